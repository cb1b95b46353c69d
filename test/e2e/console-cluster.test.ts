// The console's cluster page in cluster mode: two gateway nodes on a real redis-server, a device on
// one node seen from the other's console, each node's revision, and what the page says when Redis goes.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import type { MqttClient } from 'mqtt'
import type { Browser } from 'playwright-core'
import { startGateway, provision, connect, closeClient, removeDir, type TestGateway } from '../helpers/gateway.ts'
import { startRedis, type TestRedis } from '../helpers/redis.ts'
import { ensureConsoleBuilt } from '../../admin-api/console/build.ts'
import { launchChromium, login, newPage, screenshot } from './browser.ts'

const UI_TIMEOUT = 15_000
const AG = 'os::00256D-0001'
let redis: TestRedis
let A: TestGateway
let B: TestGateway
let browser: Browser
let device: MqttClient | undefined

before(async () => {
  await ensureConsoleBuilt()
  redis = await startRedis()
  const node = async (id: string): Promise<TestGateway> => await startGateway({ redis: { url: redis.url, prefix: 'uspgate-console:' }, nodeId: id })
  A = await node('node-a')
  B = await node('node-b')
  const cred = await provision(A, 'acme', AG)
  // the credential reaches node B through Redis
  for (let i = 0; ; i++) {
    try { device = await connect(B, { username: cred.username, password: cred.secret }); break } catch (err) {
      if (i > 50) throw err
      await new Promise(r => setTimeout(r, 100))
    }
  }
  browser = await launchChromium()
})

after(async () => {
  await closeClient(device)
  await browser?.close()
  for (const g of [A, B]) { if (g) { await g.close(); await removeDir(g.dataDir) } }
  await redis?.stop()
})

test('node A\'s console lists both nodes with their revisions, Redis state, and node B\'s device online', async () => {
  const page = await newPage(browser)
  await login(page, A.adminUrl, A.token)
  await page.getByRole('link', { name: 'Cluster' }).click()
  const nodes = page.getByRole('table', { name: 'Nodes' })
  await nodes.getByText('node-b').waitFor({ timeout: UI_TIMEOUT })
  const text = await nodes.innerText()
  assert.match(text, /node-a \(this node\)/)
  const stable = A.gw.policy.revision
  assert.equal(text.split(stable).length - 1, 2, 'both nodes run the stable revision')
  assert.match(text, /in step/)
  assert.match(await page.locator('main').innerText(), /Redis\s+redis:\/\/127\.0\.0\.1:\d+ \(prefix uspgate-console:\) — up, state in sync/)
  await screenshot(page, '07-cluster-two-nodes')
  await page.getByRole('link', { name: 'Devices' }).click()
  const row = page.locator(`tr[data-endpoint="${AG}"]`)
  await row.filter({ hasText: 'online' }).filter({ hasText: 'node-b' }).waitFor({ timeout: UI_TIMEOUT })

  // Redis goes away for a while (SHUTDOWN SAVE, back with its data): the page says so instead of
  // showing a stale view, and shows the nodes again once Redis is back
  await page.getByRole('link', { name: 'Cluster' }).click()
  await nodes.getByText('node-b').waitFor({ timeout: UI_TIMEOUT })
  const back = redis.restart({ save: true, downMs: 6000 })
  await page.getByRole('alert').filter({ hasText: /Redis is unreachable/ }).waitFor({ timeout: UI_TIMEOUT })
  await screenshot(page, '08-cluster-redis-down')
  await back
  await page.getByRole('alert').waitFor({ state: 'detached', timeout: UI_TIMEOUT * 2 })
  await nodes.getByText('node-b').waitFor({ timeout: UI_TIMEOUT })
  await page.context().close()
})
