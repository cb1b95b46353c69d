// broker/cluster: cluster mode on Redis, the only folder that imports ioredis — connections, control
// channel, heartbeats, event stream, Redis implementations of the stores, the PKI mirror.
export { Cluster, clusterNodeId, redisOptionsFromUrl, redactRedisUrl, DEFAULT_REDIS_PREFIX, HEARTBEAT_MS, HEARTBEAT_TTL_S, DEFAULT_EVENT_STREAM_MAX, type RedisSettings, type RedisTlsFiles, type ClusterHooks, type ControlMessage } from './cluster.ts'
export { RedisStateStore, type StoreChange } from './redis-store.ts'
export { RedisEndpointRegistry } from './endpoints-redis.ts'
export { RedisConnectCounts } from './connect-counts-redis.ts'
export { RedisUspAudit } from './usp-audit-redis.ts'
export { ClusterPki, PKI_LOCK_TTL_MS, type ClusterPkiOptions } from './pki-mirror.ts'
