// Cluster routing: the route-table emitter aedes uses in cluster mode, and its Redis key layout.
export { RouteTableEmitter, type RouteEmitterOptions, type RouteStats, type RoutedPacket } from './route-emitter.ts'
export { routeKeys, type RouteKeys, type RouteChange } from './keys.ts'
export { RouteTable, QLOBBER_MQTT_OPTIONS } from './route-table.ts'
