/**
 * Attacks on the web console in a real Chromium (audit): tenant-controlled strings carrying HTML
 * and script in every name the console shows, rendered with the CSP switched off (so what is
 * proved is that nothing is ever parsed as markup, not only that the CSP would block it); the same
 * through the URL's hash; and a client-side path traversal: a role named ".." opened from a
 * crafted link (`#/people?role=..`) turned "remove this policy from the role" into
 * `DELETE /api/v1/roles/../policies/<id>`, which the browser sends as `DELETE /api/v1/policies/<id>`.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeWithBrowser, expectInert, goTo, launchBrowser, openConsole, openConsoleWithoutCsp, signIn, type ConsolePage } from '../test/support/browser.js';
import { CONSOLE_PASSWORD, provisionConsoleTenant, startTowerAgent, type ConsoleTenant, type RunningAgent } from '../test/support/console-world.js';
import { ADMIN_EMAIL, ADMIN_PASSWORD, startTestControlPlane, type TestControlPlane } from '../test/support/control-plane.js';

/** A name that runs script wherever it is parsed as HTML, or breaks out of a quoted attribute. */
const evil = (label: string): string => `${label}:"'><img src=x onerror=window.__xss='${label}'><svg onload=window.__xss='${label}'>`;

describeWithBrowser('console audit: stored and hash XSS, path traversal', () => {
  let tcp: TestControlPlane;
  let browser: Browser;
  let t: ConsoleTenant;
  let tower: RunningAgent;
  let alertId: string;
  let commandId: string;
  let carrierId: string;
  let roleId: string;
  const opened: ConsolePage[] = [];

  beforeAll(async () => {
    tcp = await startTestControlPlane({ config: { rate_limit_per_min: 10_000 } });
    t = await provisionConsoleTenant(tcp, 'xssco', { lat: 45.76, lon: 4.84 });
    const o = t.owner;
    await o.patch('/api/v1/tenant', { name: evil('tenant') });
    await o.patch(`/api/v1/users/${t.userId}`, { name: evil('user') });
    await o.patch(`/api/v1/policies/${t.policyId}`, { name: evil('policy') });
    await o.patch(`/api/v1/devices/${t.device}`, { name: evil('device'), os: evil('os') });
    const { apps } = await o.get<{ apps: Array<{ id: string; key: string }> }>('/api/v1/apps');
    await o.patch(`/api/v1/apps/${apps.find((a) => a.key === 'dropbox')!.id}`, { name: evil('app') });
    const { role } = await o.post<{ role: { id: string } }>('/api/v1/roles', { name: evil('role'), description: evil('description') });
    roleId = role.id;
    await o.post('/api/v1/roles/policies/assign', { role_id: roleId, policy_id: t.policyId });
    await o.post('/api/v1/policy-rules', { policy_id: t.policyId, app: 'dropbox', action: 'upload_file', permission: 'deny' });
    await tcp.operator.patch(`/api/v1/towers/${t.tower.id}`, { name: evil('tower') });
    const { carrier } = await tcp.operator.post<{ carrier: { id: string } }>('/api/v1/carriers', { name: evil('carrier') });
    carrierId = carrier.id;
    await tcp.operator.post(`/api/v1/towers/${t.tower.id}/carriers`, { carrier_id: carrierId });
    tower = await startTowerAgent(tcp, t);
    expect((await tower.decide(t.device, 'dropbox', 'upload_file')).effect).toBe('deny');
    await tower.decide(t.device, 'slack', 'open');
    const { alerts } = await o.get<{ alerts: Array<{ id: string }> }>('/api/v1/dashboard/alerts');
    alertId = alerts[0]!.id;
    const { command } = await o.post<{ command: { id: string } }>('/api/v1/remedial-actions', { device_id: t.device, type: 'notify', reason: evil('reason') });
    commandId = command.id;
    browser = await launchBrowser();
  }, 60_000);
  afterAll(async () => {
    for (const cp of opened) await cp.close().catch(() => undefined);
    await browser?.close();
    await tower?.stop();
    await tcp?.destroy();
  });

  /** A console page; `bypassCSP` leaves the page without its CSP, so only the rendering defends it. */
  async function open(bypassCSP: boolean): Promise<ConsolePage> {
    const cp = bypassCSP ? await openConsoleWithoutCsp(browser, tcp.cp.httpUrl) : await openConsole(browser, tcp.cp.httpUrl);
    opened.push(cp);
    return cp;
  }

  async function expectShownAsText(page: Page, where: string, labels: string[]): Promise<void> {
    for (const label of labels) {
      await expect.poll(() => page.locator('body').textContent(), { message: `${where}: ${label}` }).toContain(evil(label));
    }
    await expectInert(page, where);
  }

  it('renders tenant-controlled names as text on every tenant view, with the CSP switched off', async () => {
    const cp = await open(true);
    await signIn(cp, t.emails.owner, CONSOLE_PASSWORD);
    const { page } = cp;
    const views: Array<[hash: string, labels: string[]]> = [
      ['#/', ['tenant', 'user']],
      [`#/alerts?id=${alertId}`, ['user', 'policy', 'tower']],
      [`#/remediations?id=${commandId}`, ['reason']],
      ['#/devices', ['device', 'os', 'user']],
      [`#/people?user=${t.userId}&role=${roleId}`, ['user', 'role', 'description', 'policy']],
      [`#/policies?id=${t.policyId}`, ['policy', 'app', 'role']],
      ['#/audit', []],
    ];
    for (const [hash, labels] of views) {
      await goTo(page, hash);
      await expectShownAsText(page, hash, labels);
    }
    await goTo(page, '#/decisions');
    await page.getByTestId('mode-history').click();
    await expectShownAsText(page, '#/decisions history', ['user', 'policy', 'tower']);
    // A decision published while the page watches reaches the live table through the feed.
    await page.getByTestId('mode-live').click();
    await page.getByTestId('feed-status').and(page.locator('[data-state="live"]')).waitFor();
    await tower.decide(t.device, 'dropbox', 'upload_file');
    await page.locator(`[data-testid="decision-row"][data-device="${t.device}"]`).first().waitFor();
    await expectShownAsText(page, '#/decisions live', ['user', 'policy', 'tower']);
    expect(cp.urls.filter((u) => new URL(u).pathname === '/x')).toEqual([]);
    expect(cp.errors).toEqual([]);
  }, 90_000);

  it('renders operator views (map, carriers, tenants, audit) and hash parameters as text', async () => {
    const cp = await open(true);
    await signIn(cp, ADMIN_EMAIL, ADMIN_PASSWORD);
    const { page } = cp;
    await expectShownAsText(page, 'map', ['tower']);
    await page.locator(`[data-testid="map-tower"][data-tower="${t.tower.id}"] circle.tower-dot`).click();
    await expect.poll(() => page.getByTestId('tower-detail').textContent()).toContain(evil('carrier'));
    await expectInert(page, 'tower detail');
    for (const [hash, labels] of [
      [`#/carriers?id=${carrierId}`, ['carrier', 'tower']],
      ['#/tenants', ['tenant']],
      ['#/audit', []],
    ] as const) {
      await goTo(page, hash);
      await expectShownAsText(page, hash, [...labels]);
    }
    await cp.close();

    // The hash is the attacker's to write (a link): every parameter a view reads from it.
    const tenant = await open(true);
    await signIn(tenant, t.emails.owner, CONSOLE_PASSWORD);
    const p = encodeURIComponent(evil('hash'));
    const hashes: Array<[hash: string, ready: string]> = [
      [`#/people?user=${p}&role=${p}`, 'user-roles'],
      [`#/alerts?id=${p}`, 'alert-status-filter'],
      [`#/remediations?id=${p}`, 'command-detail'],
      [`#/policies?id=${p}`, 'policies'],
      [`#${p}`, 'overview-chart'],
    ];
    for (const [hash, ready] of hashes) {
      await goTo(tenant.page, hash);
      await tenant.page.getByTestId(ready).waitFor();
      await expectInert(tenant.page, hash);
    }
    await goTo(tenant.page, `#/decisions?user=${p}&device=${p}&app=${p}&tower=${p}&effect=${p}`);
    await expect.poll(() => tenant.page.getByTestId('filter-device').inputValue()).toBe(evil('hash'));
    await expectInert(tenant.page, '#/decisions filters');
    expect(tenant.errors).toEqual([]);
  }, 90_000);

  it('never lets a dot segment from a link or a name move a request to another endpoint', async () => {
    // A tenant writer names a role "..", gives it a policy, and sends the owner a link to it.
    const { policy } = await t.owner.post<{ policy: { id: string; name: string } }>('/api/v1/policies', { name: 'keep-me', severity: 'low' });
    const { role } = await t.owner.post<{ role: { id: string } }>('/api/v1/roles', { name: '..' });
    await t.owner.post('/api/v1/roles/policies/assign', { role_id: role.id, policy_id: policy.id });

    const cp = await open(false);
    const sent: string[] = [];
    cp.page.on('request', (req) => sent.push(`${req.method()} ${new URL(req.url()).pathname}`));
    await signIn(cp, t.emails.owner, CONSOLE_PASSWORD);
    await goTo(cp.page, '#/people?role=..');
    const assigned = cp.page.getByTestId('role-policies');
    await assigned.getByText('keep-me').waitFor();
    // "Remove keep-me from this role": unassigning, at worst refused; never deleting the policy.
    await assigned.getByRole('button', { name: 'remove keep-me' }).click();
    await assigned.locator('.banner-error').or(assigned.getByText('None.')).waitFor();

    expect(sent.filter((s) => s.startsWith('DELETE'))).toEqual([]);
    expect(await assigned.locator('.banner-error').textContent()).toContain('Not sent');
    const kept = await t.owner.get<{ policy: { id: string } }>(`/api/v1/policies/${policy.id}`);
    expect(kept.policy.id).toBe(policy.id);
    const still = await t.owner.get<{ policies: Array<{ id: string }> }>(`/api/v1/roles/policies?role=${role.id}`);
    expect(still.policies.map((p) => p.id)).toEqual([policy.id]);
    expect(cp.errors).toEqual([]);
  });
});
