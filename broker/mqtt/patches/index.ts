// Fixes of aedes 2.0.0-beta.1, aedes-persistence 10 and aedes-persistence-redis 11, one file per
// fix area, each naming the upstream bug it closes. A fix of module-private code no hook reaches is
// a source patch instead, applied by npm install: aedes-source/README.md.
// First, before any module that loads mqtt-packet (see the file):
export { quietDebug } from './quiet-debug.ts'
export { installWholePacketWrites, wholePacketWritesInstalled } from './whole-packet-writes.ts'
export { installConnackSteering, setConnackUserProperties, setConnackRefusalReason } from './connack-user-properties.ts'
export { hardenPersistence, createMemoryPersistence, countEachAckOnce, type PersistenceConnection } from './persistence.ts'
export { indexRetained, RetainedIndex } from './retained-index.ts'
export { resumeQueuedMessages } from './session-resume-queue.ts'
export { enforceOutboundLimits, type OutboundDrop, type OutboundLimitOptions } from './outbound-limits.ts'
export { deliverPerMatchingSubscriptions, topicMatches } from './matching-subscriptions.ts'
export { rememberKeptSessions, resumeSessionPresent } from './session-present.ts'
export { markGranted, storeGrantedSubscriptionsOnly } from './granted-subscriptions.ts'
export { dictionarySubscriptions } from './subscription-table.ts'
export { releaseIdleParserPacket } from './idle-parser.ts'
export { releaseConnectPacket } from './connect-packet.ts'
export { skipUnreadSysAnnouncements } from './unread-sys.ts'
