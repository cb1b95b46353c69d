// The only module that imports @peculiar/x509: the Reflect shim must be
// evaluated first (ES modules evaluate imports in source order).
import './reflect-shim.ts'
export * from '@peculiar/x509'
