/**
 * The world every pipeline-facing bench part provisions through the public API: one premium
 * tenant (500 devices by default; the free plan's device limit is lower), two roles, a DLP deny
 * with a remediation and a social-media deny, 20 towers. Traffic is the allowed mix; violations
 * (dropbox upload_file by a contractor) are injected where a part asks for them.
 */
import { ApiClient } from '../../simulator/api-client.js';
import { provisionWorld, type Provisioned } from '../../simulator/provision.js';
import { parseScenario, type Scenario } from '../../simulator/scenario.js';
import { BENCH_ADMIN_EMAIL } from './control-plane.js';

export const BENCH_TOWERS = 20;
export const VIOLATION = { app: 'dropbox', action: 'upload_file' } as const;

export interface BenchWorldOptions {
  /** Device users; each has two devices (default 250). */
  users?: number;
  towers?: number;
}

export function benchScenario(opts: BenchWorldOptions = {}): Scenario {
  return parseScenario({
    name: 'bench',
    seed: 7,
    duration_s: 5,
    rate_eps: 1000,
    arrival: 'poisson',
    towers: { count: opts.towers ?? BENCH_TOWERS, id_prefix: 'bench-tower' },
    batch: { max_events: 100, max_delay_ms: 50 },
    tenants: [
      {
        name: 'bench',
        plan: 'premium',
        default_effect: 'allow',
        apps: ['slack', 'dropbox', 'github', 'tiktok'],
        actions: ['open', 'send_message', 'upload_file', 'download_file'],
        roles: [{ name: 'staff' }, { name: 'contractor' }],
        policies: [
          {
            name: 'dlp',
            severity: 'high',
            roles: ['contractor'],
            rules: [{ app: VIOLATION.app, action: VIOLATION.action, permission: 'deny', remediation: { type: 'block_app', duration_s: 3600 } }],
          },
          { name: 'social', severity: 'medium', roles: ['staff', 'contractor'], rules: [{ app: 'tiktok', action: '*', permission: 'deny' }, { app: 'slack', action: '*', permission: 'allow' }] },
        ],
        users: { count: opts.users ?? 250, roles: ['staff', 'contractor'] },
        devices_per_user: 2,
        mix: [
          { app: 'slack', action: 'send_message', weight: 60 },
          { app: 'github', action: 'download_file', weight: 30 },
          { app: 'dropbox', action: 'download_file', weight: 10 },
        ],
      },
    ],
    violations: { count: 0, pick: [] },
    outages: [],
  });
}

/**
 * Provisions the bench world on a running control plane (any mode). The plan's event-rate limit
 * is lifted first: the bench measures the pipeline, not the limiter.
 */
export async function provisionBenchWorld(urls: { http: string }, adminPassword: string, opts: BenchWorldOptions = {}): Promise<Provisioned> {
  const operator = await ApiClient.login(urls.http, BENCH_ADMIN_EMAIL, adminPassword);
  await operator.patch('/api/v1/plans/premium', { max_events_per_s: null });
  return provisionWorld(benchScenario(opts), { apiUrl: urls.http, adminEmail: BENCH_ADMIN_EMAIL, adminPassword });
}
