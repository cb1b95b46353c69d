// Real Chromium (Debian's `chromium` package, driven by playwright-core; no downloaded browser) for the
// console's end-to-end tests, plus the screenshot artifacts directory (git-ignored).
import { existsSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { chromium, type Browser, type Page } from 'playwright-core'

export const CHROMIUM = process.env.USPGATE_CHROMIUM ?? '/usr/bin/chromium'
export const ARTIFACTS = join(import.meta.dirname, '..', '..', 'test-artifacts', 'console')

export async function launchChromium (): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: run 'bash .ci/install-deps.sh' (Debian package chromium) or set USPGATE_CHROMIUM`)
  // --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start
  return await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'] })
}

/** A fresh page (own session storage) at 1280 × 860, the console's design width. */
export async function newPage (browser: Browser): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, acceptDownloads: true })
  return await context.newPage()
}

export async function screenshot (page: Page, name: string): Promise<string> {
  mkdirSync(ARTIFACTS, { recursive: true })
  const path = join(ARTIFACTS, `${name}.png`)
  await page.screenshot({ path, fullPage: true })
  return path
}

/** Signs in through the login form and waits for the navigation bar. */
export async function login (page: Page, adminUrl: string, token: string): Promise<void> {
  await page.goto(`${adminUrl}/console/`)
  await page.getByLabel('Admin token').fill(token)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.getByTestId('whoami').waitFor({ timeout: 15_000 })
}
