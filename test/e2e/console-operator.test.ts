/**
 * The operator (NOC) console in a real Chromium: towers on the map at their coordinates,
 * coloured by state as the towers report it; carriers and their towers; tenants with their usage
 * against their plan; system health from /metrics. The operator sees no tenant data sections.
 */
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeWithBrowser, goTo, launchBrowser, openConsole, screenshot, signIn } from '../support/browser.js';
import { provisionConsoleTenant, startTowerAgent, type ConsoleTenant, type RunningAgent } from '../support/console-world.js';
import { ADMIN_EMAIL, ADMIN_PASSWORD, startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';

describeWithBrowser('the operator console', () => {
  let tcp: TestControlPlane;
  let browser: Browser;
  let north: ConsoleTenant;
  let south: ConsoleTenant;
  let tower: RunningAgent;

  beforeAll(async () => {
    tcp = await startTestControlPlane({ config: { rate_limit_per_min: 10_000 } });
    north = await provisionConsoleTenant(tcp, 'northwind', { plan: 'premium', lat: 59.33, lon: 18.06 });
    south = await provisionConsoleTenant(tcp, 'southsea', { plan: 'free', lat: 59.3, lon: 18.1 });
    const { carrier } = await tcp.operator.post<{ carrier: { id: string } }>('/api/v1/carriers', { name: 'Nordic Mobile', mcc_mnc: '24001' });
    for (const t of [north, south]) await tcp.operator.post(`/api/v1/towers/${t.tower.id}/carriers`, { carrier_id: carrier.id });
    // Only north's tower runs an agent: it reports online; south's never reported.
    tower = await startTowerAgent(tcp, north);
    for (let i = 0; i < 3; i++) await tower.decide(north.device, 'slack', 'open');
    browser = await launchBrowser();
    // A control plane, two provisioned tenants (seven password hashes), an agent and Chromium:
    // ~10 s alone, but CI runs it beside the crash audits' whole distributed stacks on 2 cores
    // (one run took over 60 s).
  }, 150_000);
  afterAll(async () => {
    await browser?.close();
    await tower?.stop();
    await tcp?.destroy();
  });

  it('draws the towers at their coordinates, coloured by state, and lists tenants against their plans and the system health', async () => {
    const cp = await openConsole(browser, tcp.cp.httpUrl);
    await signIn(cp, ADMIN_EMAIL, ADMIN_PASSWORD);
    const { page } = cp;
    expect(await page.getByTestId('role').textContent()).toBe('operator');
    // Operators run the platform: no tenant data sections.
    for (const section of ['nav-decisions', 'nav-alerts', 'nav-devices']) expect(await page.getByTestId(section).count()).toBe(0);

    const northDot = page.locator(`[data-testid="map-tower"][data-tower="${north.tower.id}"]`);
    const southDot = page.locator(`[data-testid="map-tower"][data-tower="${south.tower.id}"]`);
    await expect.poll(() => northDot.getAttribute('data-state')).toBe('online');
    expect(await southDot.getAttribute('data-state')).toBe('unknown');
    // North (59.33) is drawn above south (59.30), and west (18.06) of it (18.10).
    const [n, s] = [await northDot.locator('circle.tower-dot').boundingBox(), await southDot.locator('circle.tower-dot').boundingBox()];
    expect(n!.y).toBeLessThan(s!.y);
    expect(n!.x).toBeLessThan(s!.x);
    await northDot.locator('circle.tower-dot').click();
    await expect.poll(() => page.getByTestId('tower-detail').innerText()).toContain('Nordic Mobile');
    await screenshot(page, 'operator-map');

    await page.getByTestId('nav-carriers').click();
    await page.getByTestId('carriers').getByText('Nordic Mobile').click();
    await expect.poll(() => page.getByTestId('carrier-detail').innerText()).toContain(`${south.tower.id}`);

    await page.getByTestId('nav-tenants').click();
    const northRow = page.locator('[data-testid="tenant-row"][data-tenant="northwind"]');
    await northRow.waitFor();
    expect(await northRow.innerText()).toContain('Premium');
    expect(await northRow.getByTestId('devices-gauge').innerText()).toContain('1 / 100,000');
    expect(await page.locator('[data-testid="tenant-row"][data-tenant="southsea"]').getByTestId('devices-gauge').innerText()).toContain('1 / 100');
    await screenshot(page, 'operator-tenants');

    await goTo(page, '#/health');
    await page.getByTestId('counters').getByText('decisions_sent_total').waitFor();
    await page.getByTestId('health-ingest-chart').locator('canvas').waitFor();
    await screenshot(page, 'operator-health');
    expect(cp.errors).toEqual([]);
    await cp.close();
  });
});
