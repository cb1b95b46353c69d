import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { EVENT_CODES } from '../../broker/index.ts'

test('docs/security-events.md documents every event code with its severity', async () => {
  const doc = await readFile(join(import.meta.dirname, '..', '..', 'docs', 'security-events.md'), 'utf8')
  for (const [code, def] of Object.entries(EVENT_CODES)) {
    assert.match(doc, new RegExp(`\\| \`${code.replace('.', '\\.')}\` \\| ${def.severity} \\|`), `${code} missing from docs`)
    assert.match(code, /^[a-z]+\.[a-z0-9_]+$/)
  }
})
