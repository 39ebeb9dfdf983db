/**
 * The system Chromium driven by playwright-core for the console's browser tests: never a
 * downloaded browser. Headless, no sandbox (containers), nothing that phones home, and a fresh
 * profile per launch (Playwright gives every launch its own temporary --user-data-dir).
 *
 * Without Chromium the suites skip (one line per run, from browser-setup.ts, names the package to
 * install), except under CI=true, where a missing browser is a failure (the CI script installs it).
 *
 * Each page records what would betray a console bug without failing a step: uncaught errors,
 * console errors (CSP violations among them), and every URL it requested, so a test can check that
 * no token ever went into one. Screenshots go to reports/screenshots/ (git-ignored).
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';

export const CHROMIUM_PATH = process.env.EDGEPLANE_CHROMIUM ?? '/usr/bin/chromium';
export const SCREENSHOT_DIR = fileURLToPath(new URL('../../reports/screenshots/', import.meta.url));

const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const inCi = process.env.CI === 'true';

export function chromiumAvailable(): boolean {
  return existsSync(CHROMIUM_PATH);
}

/**
 * describe() for browser suites: runs with Chromium; without it, skips (the one line saying so
 * comes from the global setup, browser-setup.ts) or, under CI=true, fails naming what is missing.
 */
export function describeWithBrowser(name: string, fn: () => void): void {
  if (chromiumAvailable()) {
    describe(name, fn);
    return;
  }
  if (inCi) {
    describe(name, () => {
      it('needs Chromium', () => {
        throw new Error(`Chromium not found at ${CHROMIUM_PATH}: apt-get install -y chromium (or set EDGEPLANE_CHROMIUM)`);
      });
    });
    return;
  }
  describe.skip(name, fn);
}

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_ARGS });
}

export interface ConsolePage {
  context: BrowserContext;
  page: Page;
  /** Uncaught exceptions and console errors (a CSP violation is logged as one). */
  errors: string[];
  /** Every HTTP(S) and WebSocket URL the page opened. */
  urls: string[];
  close(): Promise<void>;
}

/**
 * A new browser context (its own storage) with one page on the console. `prepare` runs before the
 * page loads (e.g. to install network routes).
 */
export async function openConsole(browser: Browser, baseUrl: string, prepare?: (context: BrowserContext) => Promise<void>): Promise<ConsolePage> {
  const context = await browser.newContext({ baseURL: baseUrl, viewport: { width: 1400, height: 900 }, acceptDownloads: true });
  await prepare?.(context);
  const page = await context.newPage();
  const errors: string[] = [];
  const urls: string[] = [];
  page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(`console: ${msg.text()}`);
  });
  page.on('request', (req) => urls.push(req.url()));
  page.on('websocket', (ws) => urls.push(ws.url()));
  await page.goto('/');
  return { context, page, errors, urls, close: () => context.close() };
}

/**
 * A console page without its CSP (Playwright's `bypassCSP`), so only the rendering defends it: what
 * the XSS audits use to show a payload stays text even where no CSP would stop it. Page errors and
 * dialogs (an `alert()` that ran) are recorded in `errors`.
 */
export async function openConsoleWithoutCsp(browser: Browser, baseUrl: string): Promise<ConsolePage> {
  const context = await browser.newContext({ baseURL: baseUrl, viewport: { width: 1400, height: 900 }, bypassCSP: true });
  const page = await context.newPage();
  const errors: string[] = [];
  const urls: string[] = [];
  page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
  page.on('dialog', (d) => {
    errors.push(`dialog: ${d.message()}`);
    void d.dismiss();
  });
  page.on('request', (req) => urls.push(req.url()));
  await page.goto('/');
  return { context, page, errors, urls, close: () => context.close() };
}

/** Nothing planted ran and no element came out of a string: a payload is on the page as text only. */
export async function expectInert(page: Page, where: string): Promise<void> {
  expect(await page.evaluate('window.__xss'), where).toBeUndefined();
  expect(await page.evaluate("document.querySelectorAll('img, [onerror], [onload]').length"), where).toBe(0);
}

/** Signs in through the form and waits for the shell. */
export async function signIn(cp: ConsolePage, email: string, password: string): Promise<void> {
  const { page } = cp;
  await page.getByLabel('E-mail').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByTestId('logout').waitFor();
}

/** Moves the console to a view (`#/alerts?id=…`) as a click on a link would. */
export async function goTo(page: Page, hash: string): Promise<void> {
  // A string expression: the test program has no DOM types, the page has the DOM.
  await page.evaluate(`location.hash = ${JSON.stringify(hash)}`);
}

/** The keys the page holds in localStorage and sessionStorage. */
export async function storageKeys(page: Page): Promise<{ local: string[]; session: string[] }> {
  return (await page.evaluate('({ local: Object.keys(localStorage), session: Object.keys(sessionStorage) })')) as { local: string[]; session: string[] };
}

/** Saves a full-page screenshot as reports/screenshots/<name>.png (the artifact of a test). */
export async function screenshot(page: Page, name: string): Promise<string> {
  await mkdir(SCREENSHOT_DIR, { recursive: true });
  const path = join(SCREENSHOT_DIR, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}
