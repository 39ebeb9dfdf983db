/**
 * The console's security properties in a real Chromium: tenant B's console shows none of tenant
 * A's data — not on any page, not in any API response or feed frame it receives, not while A's
 * tower is publishing — and the session model holds: the CSP is sent and nothing violates it,
 * no token appears in a URL, only the refresh token is stored (sessionStorage), and signing out
 * revokes it at the API and leaves nothing behind.
 */
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeWithBrowser, goTo, launchBrowser, openConsole, screenshot, signIn, storageKeys, type ConsolePage } from '../support/browser.js';
import { CONSOLE_PASSWORD, provisionConsoleTenant, startTowerAgent, type ConsoleTenant, type RunningAgent } from '../support/console-world.js';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';

/** Every view of the tenant console, with what to wait for once it has loaded its data. */
const VIEWS: Array<[hash: string, ready: string]> = [
  ['#/', 'overview-chart'],
  ['#/decisions', 'live-counts'],
  ['#/alerts', 'alert-status-filter'],
  ['#/remediations', 'new-remediation'],
  ['#/devices', 'registered'],
  ['#/people', 'add-user'],
  ['#/policies', 'policies'],
  ['#/audit', 'audit'],
];

describeWithBrowser('console isolation and session security', () => {
  let tcp: TestControlPlane;
  let browser: Browser;
  let a: ConsoleTenant;
  let b: ConsoleTenant;
  let towerA: RunningAgent;
  /** What identifies tenant A's data: ids, names, its tower. */
  let secretsOfA: string[];

  beforeAll(async () => {
    tcp = await startTestControlPlane({ config: { rate_limit_per_min: 10_000 } });
    a = await provisionConsoleTenant(tcp, 'alphaco', { lat: 52.52, lon: 13.405 });
    b = await provisionConsoleTenant(tcp, 'betaco', { lat: 52.5, lon: 13.35 });
    towerA = await startTowerAgent(tcp, a);
    // A has traffic, a deny rule with an alert, a discovered device and a remediation.
    await a.owner.post('/api/v1/policy-rules', { policy_id: a.policyId, app: 'dropbox', action: 'upload_file', permission: 'deny' });
    await towerA.decide(a.device, 'slack', 'open');
    await towerA.decide(a.device, 'dropbox', 'upload_file');
    await towerA.decide('alphaco-ghost-phone', 'slack', 'open', a.tenantId);
    await a.owner.post('/api/v1/remedial-actions', { device_id: a.device, type: 'notify' });
    secretsOfA = [a.tenantId, a.device, 'alphaco', a.userName, a.userId, a.policyId, a.tower.id, 'alphaco-ghost-phone'];
    browser = await launchBrowser();
  }, 150_000); // beside the crash audits on 2 cores, this setup once took over 60 s (console-operator)
  afterAll(async () => {
    await browser?.close();
    await towerA?.stop();
    await tcp?.destroy();
  });

  function leaksIn(text: string): string[] {
    return secretsOfA.filter((s) => text.includes(s));
  }

  it("shows tenant B none of tenant A's data on any view, in any response or feed frame, even while A's tower publishes", async () => {
    const cp: ConsolePage = await openConsole(browser, tcp.cp.httpUrl);
    const bodies: string[] = [];
    const frames: string[] = [];
    cp.page.on('response', (res) => {
      if (res.url().includes('/api/')) void res.text().then((t) => bodies.push(t), () => undefined);
    });
    cp.page.on('websocket', (ws) => ws.on('framereceived', (f) => frames.push(typeof f.payload === 'string' ? f.payload : f.payload.toString('utf8'))));
    await signIn(cp, b.emails.owner, CONSOLE_PASSWORD);
    await cp.page.getByTestId('feed-status').and(cp.page.locator('[data-state="live"]')).waitFor();
    for (const [hash, ready] of VIEWS) {
      await goTo(cp.page, hash);
      await cp.page.getByTestId(ready).first().waitFor();
      // A publishes while B watches: nothing of it may reach B's page.
      await towerA.decide(a.device, 'dropbox', 'upload_file');
      expect(leaksIn(await cp.page.innerText('body')), hash).toEqual([]);
    }
    await goTo(cp.page, '#/decisions');
    await cp.page.getByTestId('live-counts').waitFor();
    expect(await cp.page.getByTestId('decision-row').count()).toBe(0);
    expect(await cp.page.getByTestId('live-counts').getAttribute('data-received')).toBe('0');
    await screenshot(cp.page, 'isolation-tenant-b');
    expect(bodies.length).toBeGreaterThan(VIEWS.length);
    expect(frames.filter((f) => f.includes('"ready"')).length).toBe(2);
    expect(bodies.flatMap(leaksIn)).toEqual([]);
    expect(frames.flatMap(leaksIn)).toEqual([]);
    expect(cp.errors).toEqual([]);
    await cp.close();
  });

  it('sends the CSP, keeps tokens out of URLs and storage, and signing out revokes and clears the session', async () => {
    const cp = await openConsole(browser, tcp.cp.httpUrl);
    const page = await cp.page.request.get('/');
    expect(page.headers()['content-security-policy']).toContain("script-src 'self'");
    await signIn(cp, a.emails.owner, CONSOLE_PASSWORD);
    await cp.page.getByTestId('feed-status').and(cp.page.locator('[data-state="live"]')).waitFor();
    // Both feeds are open, authenticated through the subprotocol: their URLs carry no token.
    const sockets = cp.urls.filter((u) => u.startsWith('ws'));
    expect(sockets.sort()).toEqual([`${tcp.cp.httpUrl.replace('http', 'ws')}/api/v1/stream`, `${tcp.cp.httpUrl.replace('http', 'ws')}/ws/alerts`]);
    expect(cp.urls.filter((u) => /access_token|refresh_token|eyJ[A-Za-z0-9_-]{10,}/.test(u))).toEqual([]);
    expect(await storageKeys(cp.page)).toEqual({ local: [], session: ['edgeplane.console.refresh'] });
    const refresh = (await cp.page.evaluate("sessionStorage.getItem('edgeplane.console.refresh')")) as string;

    // A reload keeps the session (the refresh token rotates), without signing in again.
    await cp.page.reload();
    await cp.page.getByTestId('logout').waitFor();
    const rotated = (await cp.page.evaluate("sessionStorage.getItem('edgeplane.console.refresh')")) as string;
    expect(rotated).not.toBe(refresh);

    // Signing out shows the login form at once, revokes the token, then reloads the page (which
    // clears every bit of state): wait for that reload before reading the page again.
    const reloaded = cp.page.waitForEvent('load');
    await cp.page.getByTestId('logout').click();
    await reloaded;
    await cp.page.getByTestId('login-form').waitFor();
    expect(await storageKeys(cp.page)).toEqual({ local: [], session: [] });
    // The refresh token is dead at the API, and the feeds are closed.
    const reuse = await cp.page.request.post('/api/v1/auth/refresh', { data: { refresh_token: rotated } });
    expect(reuse.status()).toBe(401);
    await expect.poll(() => tcp.cp.app.feeds.size).toBe(0);
    await screenshot(cp.page, 'signed-out');
    expect(cp.errors).toEqual([]);
    await cp.close();
  });

  it('refuses a wrong password without saying which part was wrong', async () => {
    const cp = await openConsole(browser, tcp.cp.httpUrl);
    await cp.page.getByLabel('E-mail').fill(b.emails.owner);
    await cp.page.getByLabel('Password').fill('not the password at all');
    await cp.page.getByRole('button', { name: 'Sign in' }).click();
    const error = await cp.page.getByTestId('login-error').innerText();
    expect(error).toBe('email or password is incorrect');
    expect(await storageKeys(cp.page)).toEqual({ local: [], session: [] });
    // The failed sign-in's 401 is the only console error.
    expect(cp.errors.filter((e) => !e.includes('401'))).toEqual([]);
    await cp.close();
  });
});
