/**
 * The console's session across a reload when the control plane has an outage, in a real Chromium
 * against the real embedded control plane: a 503 (or a 429) answered to the reload's token refresh
 * or to the first request after it is not a refused session, so the console keeps this tab's
 * refresh token, says what happened and resumes the session on "Try again", instead of signing
 * the user out and discarding a token the API would still take. A request refused again right
 * after a refresh the API accepted ends the session instead of showing the error and carrying on.
 */
import type { Browser, Route } from 'playwright-core';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { describeWithBrowser, goTo, launchBrowser, openConsole, signIn, storageKeys, type ConsolePage } from '../support/browser.js';
import { CONSOLE_PASSWORD, provisionConsoleTenant, type ConsoleTenant } from '../support/console-world.js';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';

const REFRESH_KEY = 'edgeplane.console.refresh';

/** Answers the next request of a route with `status` (the API's error body), then lets the rest through. */
function outageOnce(status: number): (route: Route) => Promise<void> {
  let answered = false;
  return async (route) => {
    if (answered) return route.continue();
    answered = true;
    await route.fulfill({
      status,
      contentType: 'application/json',
      headers: status === 429 ? { 'retry-after': '7' } : {},
      body: JSON.stringify({ error: { code: status === 429 ? 'RATE_LIMITED' : 'UNAVAILABLE', message: 'the store is busy' } }),
    });
  };
}

describeWithBrowser('the console session through an outage', () => {
  let tcp: TestControlPlane;
  let browser: Browser;
  let acme: ConsoleTenant;
  let cp: ConsolePage | null = null;

  beforeAll(async () => {
    tcp = await startTestControlPlane({ config: { rate_limit_per_min: 10_000 } });
    acme = await provisionConsoleTenant(tcp, 'outage', { lat: 48.8566, lon: 2.3522 });
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

  it('ends the session when a request is refused again right after a successful refresh', async () => {
    cp = await openConsole(browser, tcp.cp.httpUrl);
    await signIn(cp, acme.emails.owner, CONSOLE_PASSWORD);
    const { page } = cp;
    // The device list refuses every token as expired, the one the refresh has just issued too.
    let refused = 0;
    await page.route(
      (url) => url.pathname === '/api/v1/devices',
      async (route) => {
        refused++;
        await route.fulfill({ status: 401, contentType: 'application/json', body: JSON.stringify({ error: { code: 'TOKEN_EXPIRED', message: 'access token expired' } }) });
      },
    );
    const refreshes = cp.urls.filter((u) => u.endsWith('/api/v1/auth/refresh')).length;

    await goTo(page, '#/devices');
    await page.getByTestId('login-form').waitFor();
    expect(await page.locator('.banner').textContent()).toBe('Your session ended: please sign in again.');
    expect((await storageKeys(page)).session).toEqual([]);
    // One refresh and one retry, then the end: no loop.
    expect(refused).toBe(2);
    expect(cp.urls.filter((u) => u.endsWith('/api/v1/auth/refresh')).length - refreshes).toBe(1);
  });

  for (const [path, status] of [
    ['/api/v1/auth/refresh', 503],
    ['/api/v1/auth/refresh', 429],
    ['/api/v1/me/permissions', 503],
  ] as const) {
    it(`keeps the session when a reload meets a ${status} from ${path}, and resumes it on "Try again"`, async () => {
      cp = await openConsole(browser, tcp.cp.httpUrl);
      await signIn(cp, acme.emails.owner, CONSOLE_PASSWORD);
      const { page } = cp;

      await page.route(`**${path}`, outageOnce(status));
      await page.reload();
      const notice = page.getByTestId('unavailable');
      // Either the notice or, as before the fix, the sign-in form with the session thrown away.
      await notice.or(page.getByTestId('login-form')).waitFor();
      expect(await notice.isVisible()).toBe(true);
      expect(await notice.getByRole('alert').textContent()).toBe(status === 429 ? 'Too many requests: try again in 7 s.' : 'the store is busy');
      expect((await storageKeys(page)).session).toEqual([REFRESH_KEY]);

      await page.getByRole('button', { name: 'Try again' }).click();
      await page.getByTestId('logout').waitFor();
      expect(await page.getByTestId('scope').textContent()).toBe('outage');
      expect(cp.errors.filter((e) => !e.includes(`status of ${status}`))).toEqual([]);
    });
  }
});
