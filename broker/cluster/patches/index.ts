// Fixes of upstream libraries used only in cluster mode, each in its own named file.
export { batchPersistenceSetup, SETUP_BATCH, type SetupConnection } from './batched-persistence-setup.ts'
export { indexRetainedInRedis, RetainedTopicIndex, RETAINED_BATCH, retainedKeys, filterMatches, type RetainedConnection, type Codec } from './retained-topic-index.ts'
