// Fixes of upstream libraries used only in cluster mode, each in its own named file.
export { batchPersistenceSetup, SETUP_BATCH, type SetupConnection } from './batched-persistence-setup.ts'
