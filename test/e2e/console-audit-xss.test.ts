/**
 * Strings a tower writes, rendered by the console in a real Chromium (audit): the agent version a
 * compromised edge agent reports in its status, shown on the operator's map and carrier views,
 * with the CSP switched off (only the rendering defends the page); then, with the console's real
 * CSP, markup that did reach the page (an injected handler attribute, an inline script element)
 * is refused by the browser as defence in depth. Then data that crashed or froze a view: a usage
 * time past what a Date holds, and a tower on a pole (the map's graticule never ended). The names
 * tenants and operators type are covered by api/audit-console-attacks.test.ts.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import mqtt from 'mqtt';
import { EdgeAgent } from '../../edge-agent/edge-agent.js';
import { createIdFactory } from '../../shared/ids.js';
import { SCHEMA_VERSION, encodePayload } from '../../shared/mqtt/payloads.js';
import { topics } from '../../shared/mqtt/topics.js';
import { describeWithBrowser, expectInert, goTo, launchBrowser, openConsole, openConsoleWithoutCsp, signIn, type ConsolePage } from '../support/browser.js';
import { CONSOLE_PASSWORD, provisionConsoleTenant, type ConsoleTenant } from '../support/console-world.js';
import { ADMIN_EMAIL, ADMIN_PASSWORD, startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';

/** Runs script wherever it is parsed as HTML or breaks out of a quoted attribute; within the status's 64 characters. */
const EVIL_VERSION = `"'><img src=x onerror=window.__xss=1><svg onload=window.__xss=2>`;

describeWithBrowser('console audit: tower-written strings and the CSP in a real browser', () => {
  let tcp: TestControlPlane;
  let browser: Browser;
  let t: ConsoleTenant;
  let agent: EdgeAgent;
  let stateDir: string;
  let carrierId: string;
  const opened: ConsolePage[] = [];

  beforeAll(async () => {
    tcp = await startTestControlPlane({ config: { rate_limit_per_min: 10_000 } });
    t = await provisionConsoleTenant(tcp, 'xsstower', { lat: 43.6, lon: 1.44 });
    const { carrier } = await tcp.operator.post<{ carrier: { id: string } }>('/api/v1/carriers', { name: 'xss carrier' });
    carrierId = carrier.id;
    await tcp.operator.post(`/api/v1/towers/${t.tower.id}/carriers`, { carrier_id: carrierId });
    stateDir = await mkdtemp(join(tmpdir(), 'edgeplane-console-xss-agent-'));
    agent = new EdgeAgent({ url: tcp.cp.mqttUrl, towerId: t.tower.id, password: t.tower.password, stateDir, agentVersion: EVIL_VERSION });
    await agent.start();
    browser = await launchBrowser();
  }, 90_000);
  afterAll(async () => {
    for (const cp of opened) await cp.close().catch(() => undefined);
    await browser?.close();
    await agent?.stop();
    if (stateDir) await rm(stateDir, { recursive: true, force: true });
    await tcp?.destroy();
  });

  /** A console page; `bypassCSP` leaves the page without its CSP, so only the rendering defends it. */
  async function open(bypassCSP: boolean): Promise<ConsolePage> {
    const cp = bypassCSP ? await openConsoleWithoutCsp(browser, tcp.cp.httpUrl) : await openConsole(browser, tcp.cp.httpUrl);
    opened.push(cp);
    return cp;
  }

  it('shows the agent version a tower reports as text on the map and the carrier view, with the CSP switched off', async () => {
    // The status report reaches the store through the real broker and the status worker.
    await expect
      .poll(async () => (await tcp.operator.get<{ tower: { agent_version: string | null } }>(`/api/v1/towers/${t.tower.id}`)).tower.agent_version, { timeout: 30_000 })
      .toBe(EVIL_VERSION);
    const cp = await open(true);
    await signIn(cp, ADMIN_EMAIL, ADMIN_PASSWORD);
    const { page } = cp;
    await goTo(page, '#/towers');
    await page.locator(`[data-testid="map-tower"][data-tower="${t.tower.id}"] circle.tower-dot`).click();
    await expect.poll(() => page.getByTestId('tower-detail').textContent()).toContain(EVIL_VERSION);
    await expectInert(page, 'tower detail');
    await goTo(page, `#/carriers?id=${carrierId}`);
    await expect.poll(() => page.getByTestId('carrier-detail').textContent()).toContain(EVIL_VERSION);
    await expectInert(page, 'carrier detail');
    expect(cp.errors).toEqual([]);
  }, 60_000);

  it('serves a CSP under which the browser refuses inline script and handler attributes that reach the page', async () => {
    const cp = await open(false);
    await signIn(cp, ADMIN_EMAIL, ADMIN_PASSWORD);
    const { page } = cp;
    // Markup as a rendering bug would let it in: a handler attribute and an inline script element.
    // Each is refused with a securitypolicyviolation event, awaited here (no sleep).
    const violations = (await page.evaluate(`new Promise((resolve) => {
      const seen = [];
      document.addEventListener('securitypolicyviolation', (e) => {
        seen.push(e.effectiveDirective);
        if (seen.length === 2) resolve(seen.sort());
      });
      const host = document.createElement('div');
      document.body.append(host);
      // Both handlers: which of the two an empty data: image fires differs between Chromium releases.
      host.innerHTML = '<img src="data:," onload="window.__xss = 1" onerror="window.__xss = 1">';
      const s = document.createElement('script');
      s.textContent = 'window.__xss = 2';
      document.body.append(s);
    })`)) as string[];
    expect(violations).toEqual(['script-src-attr', 'script-src-elem']);
    expect(await page.evaluate('window.__xss')).toBeUndefined();
    // The refusals are what the page logged as errors; nothing else went wrong.
    expect(cp.errors.length).toBeGreaterThan(0);
    expect(cp.errors.every((e) => /Content Security Policy/.test(e))).toBe(true);
  }, 60_000);

  it('lists a usage event stamped with a time no Date can hold', async () => {
    // A compromised tower speaks MQTT itself: the schema takes any epoch ms up to 2^53, past the
    // largest time a Date holds (8.64e15 ms, year 275760).
    const far = Number.MAX_SAFE_INTEGER;
    // The tower's own agent makes way for the raw client (same client id).
    await agent.stop();
    const raw = await mqtt.connectAsync(tcp.cp.mqttUrl, { clientId: `tower-${t.tower.id}`, username: t.tower.id, password: t.tower.password, reconnectPeriod: 0 });
    const newId = createIdFactory();
    const event = { id: newId(), ts: far, device_id: t.device, app: 'slack', action: 'open' };
    await raw.publishAsync(topics.usage(t.tenantId, t.tower.id), encodePayload({ v: SCHEMA_VERSION, id: newId(), sent_at: Date.now(), events: [event] }), { qos: 1 });
    await raw.endAsync();
    await expect
      .poll(async () => (await t.owner.get<{ usage: Array<{ id: string }> }>('/api/v1/app-usage?limit=50')).usage.map((u) => u.id), { timeout: 30_000 })
      .toContain(event.id);
    const cp = await open(false);
    await signIn(cp, t.emails.owner, CONSOLE_PASSWORD);
    const { page } = cp;
    await goTo(page, '#/decisions');
    await page.getByTestId('mode-history').click();
    // The row renders (the view used to throw "Invalid time value" and show nothing), with the raw time.
    const row = page.locator(`[data-testid="decision-row"][data-device="${t.device}"]`).filter({ hasText: String(far) });
    expect(await row.innerText()).toContain(`${far} ms (not a valid time)`);
    expect(cp.errors).toEqual([]);
  }, 60_000);

  it('draws the map of a fleet with a tower on a pole (no endless graticule)', async () => {
    // At latitude ±90 the projection's cos(latitude) is ~6e-17: the drawing spans some 1e15 degrees
    // of longitude, and a graticule line every 90 of them never finished, freezing the tab.
    // Every placed tower there (the suite's only one), so the drawing is centred on the pole.
    await tcp.operator.patch(`/api/v1/towers/${t.tower.id}`, { lat: 90, lon: 0 });
    const cp = await open(false);
    await signIn(cp, ADMIN_EMAIL, ADMIN_PASSWORD);
    const { page } = cp;
    await goTo(page, '#/towers');
    await page.locator(`[data-testid="map-tower"][data-tower="${t.tower.id}"]`).waitFor({ timeout: 20_000 });
    expect(await page.locator('svg.map line.graticule').count()).toBeGreaterThan(0);
    expect(cp.errors).toEqual([]);
  }, 60_000);
});
