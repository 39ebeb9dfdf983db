/**
 * A console export in a real Chromium is saved by the browser's download manager, streamed to
 * disk, whatever its size. The console used to fetch exports with its token in a header and save
 * them from the tab's memory, so it stopped at 100 MB; it now asks the API for a single-use link
 * to the export (api/routes/download-tokens.ts) and lets the browser download that link.
 *
 * The export here is a few MB (20,000 usage rows), not the old 100 MB bound: what shows that no
 * bound applies is that the file comes from the link (a download the browser streams) and not
 * from a blob the tab assembled, that it is complete, and that the link is spent once used.
 *
 * The link is bound to the browser that asked for it by a cookie its POST set (HttpOnly,
 * SameSite=Strict): the console's same-origin fetch stores it and the download sends it, while the
 * same link opened in a fresh browser (a leaked link) is refused and stays usable by the first.
 */
import { readFile } from 'node:fs/promises';
import type { Browser } from 'playwright-core';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { seedUsage, type SeedEvent } from '../../api/seed-usage.js';
import { describeWithBrowser, goTo, launchBrowser, openConsole, signIn, type ConsolePage } from '../support/browser.js';
import { CONSOLE_PASSWORD, provisionConsoleTenant, type ConsoleTenant } from '../support/console-world.js';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';

const ROWS = 20_000;

describeWithBrowser('a console export of any size', () => {
  let tcp: TestControlPlane;
  let browser: Browser;
  let acme: ConsoleTenant;
  let cp: ConsolePage | null = null;

  beforeAll(async () => {
    tcp = await startTestControlPlane({ config: { rate_limit_per_min: 10_000 } });
    acme = await provisionConsoleTenant(tcp, 'bigexport', { lat: 48.8566, lon: 2.3522 });
    const events: SeedEvent[] = Array.from({ length: ROWS }, (_, i) => ({
      device_id: `dev-bulk-${i}`,
      app: 'slack',
      action: 'upload_file',
      effect: i % 7 === 0 ? 'deny' : 'allow',
    }));
    for (let i = 0; i < ROWS; i += 1000) await seedUsage(tcp.cp.store, acme.tenantId, acme.tower.id, events.slice(i, i + 1000));
    browser = await launchBrowser();
  }, 150_000);
  afterEach(async () => {
    if (cp) {
      // Nothing the console did may have thrown, violated the CSP, or put an access token into a URL.
      expect(cp.errors).toEqual([]);
      expect(cp.urls.filter((u) => /access_token|eyJ[A-Za-z0-9_-]{10,}/.test(u))).toEqual([]);
      await cp.close();
      cp = null;
    }
  });
  afterAll(async () => {
    await browser?.close();
    await tcp?.destroy();
  });

  /** The analyst's console on the decision history, its export menu shown. */
  async function historyExportMenu() {
    const opened = await openConsole(browser, tcp.cp.httpUrl);
    cp = opened;
    await signIn(opened, acme.emails.analyst, CONSOLE_PASSWORD);
    const { page } = opened;
    await goTo(page, '#/decisions');
    await page.getByTestId('mode-history').click();
    const exportMenu = page.getByTestId('export');
    await exportMenu.waitFor();
    return { opened, page, exportMenu };
  }

  it('is downloaded by the browser from a single-use link, complete, and the link is spent', async () => {
    const { opened, page, exportMenu } = await historyExportMenu();
    const issued = page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/api/v1/downloads');
    const [download] = await Promise.all([page.waitForEvent('download'), exportMenu.getByRole('button', { name: 'CSV' }).click()]);
    // The link came with its cookie, which the browser kept (HttpOnly: no script of the page reads it).
    const setCookie = await (await issued).headerValue('set-cookie');
    expect(setCookie).toMatch(/^epd_[A-Za-z0-9_-]{16}=[A-Za-z0-9_-]{43}; Max-Age=60; Path=\/api\/v1\/downloads; HttpOnly; SameSite=Strict$/);
    const cookie = setCookie!.split(';')[0]!;

    // The browser fetched the link itself (a blob: URL would mean the tab held the file).
    const link = new URL(download.url());
    expect(link.origin).toBe(new URL(tcp.cp.httpUrl).origin);
    expect(link.pathname).toMatch(/^\/api\/v1\/downloads\/epd_[A-Za-z0-9_-]{43}$/);
    expect(link.search).toBe('');
    expect(await download.failure()).toBeNull();
    expect(download.suggestedFilename()).toMatch(/^app-usage-\d{8}T\d{6}Z\.csv$/);

    const csv = await readFile(await download.path(), 'utf8');
    const lines = csv.split('\r\n').filter((l) => l !== '');
    expect(lines[0]).toContain('device_id');
    expect(lines.filter((l) => l.includes(',dev-bulk-'))).toHaveLength(ROWS);
    expect(Buffer.byteLength(csv)).toBeGreaterThan(2 * 1024 * 1024);
    expect(await exportMenu.locator('.inline-error').count()).toBe(0);

    // Spent: the same link opened again, even with its cookie, is refused; the browser dropped the cookie.
    expect((await fetch(download.url(), { headers: { cookie } })).status).toBe(404);
    expect((await opened.context.cookies()).filter((c) => c.name.startsWith('epd_'))).toEqual([]);
  });

  it('is refused when the bare link is opened in another browser, and still downloads in the one that asked', async () => {
    const { opened, page, exportMenu } = await historyExportMenu();
    // The console exports as usual; the test reads the bearer token its request carried.
    const asked = page.waitForRequest((r) => r.method() === 'POST' && new URL(r.url()).pathname === '/api/v1/downloads');
    const [own] = await Promise.all([page.waitForEvent('download'), exportMenu.getByRole('button', { name: 'CSV' }).click()]);
    expect(await own.failure()).toBeNull();
    const authorization = (await asked).headers().authorization!;
    // A second link of the same browser (its request context shares the browser's cookies), which
    // leaks before it is used.
    const minted = await opened.context.request.post('/api/v1/downloads', { headers: { authorization }, data: { path: '/api/v1/app-usage', format: 'csv' } });
    expect(minted.status()).toBe(201);
    const leaked = new URL(((await minted.json()) as { url: string }).url, tcp.cp.httpUrl).href;
    const held = (await opened.context.cookies()).filter((c) => c.name.startsWith('epd_'));
    expect(held).toEqual([expect.objectContaining({ path: '/api/v1/downloads', httpOnly: true, sameSite: 'Strict', secure: false })]);

    // A fresh browser (no cookies: another person's, or history synced elsewhere) opens the bare link.
    const stranger = await browser.newContext({ acceptDownloads: true });
    try {
      const strangerPage = await stranger.newPage();
      const refused = await strangerPage.goto(leaked);
      expect(refused?.status()).toBe(404);
      expect(await refused?.text()).toContain('without the cookie its POST /downloads set');
    } finally {
      await stranger.close();
    }

    // The refusal spent nothing: the browser that asked downloads it now, complete.
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      // As the console opens its links (Api.download): a same-origin anchor with `download`.
      page.evaluate(`(() => {
        const a = document.createElement('a');
        a.href = ${JSON.stringify(leaked)};
        a.download = '';
        document.body.append(a);
        a.click();
        a.remove();
      })()`),
    ]);
    expect(await download.failure()).toBeNull();
    const csv = await readFile(await download.path(), 'utf8');
    expect(csv.split('\r\n').filter((l) => l.includes(',dev-bulk-'))).toHaveLength(ROWS);
  });

  it('says why before anything is downloaded when the export is refused', async () => {
    const { opened, page, exportMenu } = await historyExportMenu();
    const saved: string[] = [];
    page.on('download', (d) => saved.push(d.suggestedFilename()));
    // A filter the API refuses (the console would not send it; a rewritten request does).
    await page.route('**/api/v1/downloads', async (route) => {
      const body = route.request().postDataJSON() as { query: Record<string, string> };
      await route.continue({ postData: JSON.stringify({ ...body, query: { ...body.query, effect: 'maybe' } }) });
    });
    await exportMenu.getByRole('button', { name: 'CSV' }).click();
    await exportMenu.locator('.inline-error').waitFor();
    expect(await exportMenu.locator('.inline-error').textContent()).toContain('effect');
    expect(saved).toEqual([]);
    expect(await exportMenu.getByRole('button', { name: 'CSV' }).isEnabled()).toBe(true);
    // The browser reports the refused request itself; nothing else went wrong.
    expect(opened.errors).toEqual([expect.stringContaining('status of 400')]);
    opened.errors.length = 0;
  });
});
