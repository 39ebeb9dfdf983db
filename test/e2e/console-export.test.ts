/**
 * A console export larger than the tab should hold, in a real Chromium: the console fetches an
 * export with the token in a header and saves it from memory, so it must stop at
 * MAX_DOWNLOAD_BYTES, cancel the transfer (the API stops walking pages when its client goes away)
 * and say what to do instead, rather than buffer a whole history until the tab runs out of memory.
 * The export request is sent on to a local server that streams twice the bound (generating a
 * million real usage rows would take minutes); the small export that is saved is in
 * test/e2e/console.test.ts.
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Browser } from 'playwright-core';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { describeWithBrowser, goTo, launchBrowser, openConsole, signIn, type ConsolePage } from '../support/browser.js';
import { CONSOLE_PASSWORD, provisionConsoleTenant, type ConsoleTenant } from '../support/console-world.js';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';

/** MAX_DOWNLOAD_BYTES of web/src/lib/api.ts (a browser module: the test program has no DOM types). */
const MAX_DOWNLOAD_BYTES = 100 * 1024 * 1024;
/** Far enough past the bound that the bytes in flight when the console hangs up cannot cover it. */
const TOTAL = 2 * MAX_DOWNLOAD_BYTES;
const CHUNK = Buffer.alloc(64 * 1024, 'a,b,c\n');

/** Streams TOTAL bytes of CSV, with backpressure; `sent` and `finished` tell how far it got. */
function startBigExport(): { server: Server; state: { sent: number; finished: boolean; closed: Promise<unknown> } } {
  let closed: (value: unknown) => void = () => undefined;
  const state = { sent: 0, finished: false, closed: new Promise((resolve) => (closed = resolve)) };
  async function* body(): AsyncGenerator<Buffer> {
    while (state.sent < TOTAL) {
      const piece = CHUNK.subarray(0, Math.min(CHUNK.length, TOTAL - state.sent));
      state.sent += piece.length;
      yield piece;
    }
  }
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/csv; charset=utf-8', 'content-disposition': 'attachment; filename="alerts.csv"' });
    // A pipeline fails when the console hangs up first.
    void pipeline(Readable.from(body()), res)
      .then(() => (state.finished = true), () => undefined)
      .finally(() => closed(undefined));
  });
  return { server, state };
}

describeWithBrowser('a console export past what the tab may hold', () => {
  let tcp: TestControlPlane;
  let browser: Browser;
  let acme: ConsoleTenant;
  let cp: ConsolePage | null = null;

  beforeAll(async () => {
    tcp = await startTestControlPlane({ config: { rate_limit_per_min: 10_000 } });
    acme = await provisionConsoleTenant(tcp, 'bigexport', { lat: 48.8566, lon: 2.3522 });
    browser = await launchBrowser();
  }, 150_000);
  afterEach(async () => {
    await cp?.close();
    cp = null;
  });
  afterAll(async () => {
    await browser?.close();
    await tcp?.destroy();
  });

  it('stops at the bound, cancels the transfer and says what to do, instead of buffering it all', async () => {
    const big = startBigExport();
    big.server.listen(0, '127.0.0.1');
    await once(big.server, 'listening');
    try {
      cp = await openConsole(browser, tcp.cp.httpUrl);
      await signIn(cp, acme.emails.analyst, CONSOLE_PASSWORD);
      const { page } = cp;
      const { port } = big.server.address() as AddressInfo;
      await page.route(
        (url) => url.pathname === '/api/v1/dashboard/alerts' && url.searchParams.has('format'),
        (route) => route.continue({ url: `http://127.0.0.1:${port}/export.csv` }),
      );
      await goTo(page, '#/alerts');
      const exportMenu = page.getByTestId('export');
      await exportMenu.waitFor();
      const saved: string[] = [];
      page.on('download', (d) => saved.push(d.suggestedFilename()));
      await exportMenu.getByRole('button', { name: 'CSV' }).click();

      await exportMenu.locator('.inline-error').waitFor();
      expect(await exportMenu.locator('.inline-error').textContent()).toBe(
        'This export is larger than the console can save (100 MB): narrow the filters, or fetch it from the API with an API key.',
      );
      // The console hung up: the server never got to send the whole body, and nothing was saved.
      await big.state.closed;
      expect(big.state.finished).toBe(false);
      expect(saved).toEqual([]);
      // The menu is usable again.
      expect(await exportMenu.getByRole('button', { name: 'CSV' }).isEnabled()).toBe(true);
    } finally {
      big.server.closeAllConnections();
      big.server.close();
    }
  });
});
