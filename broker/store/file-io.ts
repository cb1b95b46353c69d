// Durable file writes for the stores: the one implementation (temp file + fsync + rename +
// fsync(dir), mode 0600) lives in certs/files.ts, the leaf every layer may import.
export { writeFileAtomic } from '../../certs/index.ts'
