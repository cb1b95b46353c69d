#!/usr/bin/env node
// Entry for the installed `uspgate` command: runs the TypeScript CLI through tsx.
import { register } from 'tsx/esm/api'
register()
await import('./uspgate.ts')
