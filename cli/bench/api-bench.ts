/**
 * `bench --only api`: the REST API of `edgeplane start` under autocannon, against a Fastify hello
 * world (hello-server.ts) measured in the same run with the same load — both servers in child
 * processes of their own, autocannon in this one. The store first gets the bench world and
 * `rows` usage events (seeded through the store, usage-seed.ts, not the API), so lists read a
 * realistic table:
 *  - throughput: requests/s of authenticated list endpoints (first page, default size) with
 *    `connections` connections, as a share of the hello world's, with the rows each first page
 *    holds (a list of 2 policies costs what any authenticated request costs; a 50-row page is
 *    mostly its rows), and `/tenant` (one row: the caller's tenant) as the floor an authenticated
 *    request costs here;
 *  - latency: p50/p99 with one connection (closed loop, no queueing) on /app-usage (unfiltered and
 *    with the filters the console uses) and /dashboard/alerts. SQLite usage pages filtered by
 *    device or user read at most 50,000 rows each by design (usage-repo.ts boundedScan) and may
 *    return fewer rows with a cursor to continue: rows per first page are reported beside them.
 * Every endpoint gets one unreported warm-up second first. autocannon is a devDependency, loaded
 * only by this part.
 */
import { ApiClient } from '../../simulator/api-client.js';
import { provisionBenchWorld } from './bench-world.js';
import { nodeArgsFor, siblingScript, spawnAndWait } from './child.js';
import { startBenchControlPlane } from './control-plane.js';
import { seedUsageRows } from './usage-seed.js';

export interface ThroughputRow {
  path: string;
  requests_per_s: number;
  p99_ms: number;
  non2xx: number;
  ratio_to_hello: number;
  /** Items on the first page (1 for `/tenant`, the floor). */
  rows_first_page: number;
}

export interface LatencyRow {
  path: string;
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
  requests: number;
  rows_first_page: number;
  non2xx: number;
}

export interface ApiBenchResult {
  usage_rows: number;
  seed_s: number;
  connections: number;
  seconds: number;
  hello: { requests_per_s: number; p99_ms: number };
  throughput: ThroughputRow[];
  latency: LatencyRow[];
}

type Autocannon = typeof import('autocannon').default;

async function loadAutocannon(): Promise<Autocannon> {
  try {
    return (await import('autocannon')).default;
  } catch {
    throw new Error('the api part needs autocannon (a devDependency): run npm ci without --omit=dev');
  }
}

export async function benchApi(opts: { rows: number; connections: number; seconds: number; log: (s: string) => void }): Promise<ApiBenchResult> {
  const autocannon = await loadAutocannon();
  const run = async (url: string, connections: number, headers: Record<string, string> = {}) => {
    await autocannon({ url, connections, duration: 1, headers });
    return autocannon({ url, connections, duration: opts.seconds, headers });
  };
  // Provision, stop, seed the store directly, start again on the same data dir.
  const first = await startBenchControlPlane({ args: ['--rate-limit-per-min', '1000000000'] });
  let seedS: number;
  let provisioned: Awaited<ReturnType<typeof provisionBenchWorld>>;
  try {
    provisioned = await provisionBenchWorld(first.urls, first.adminPassword, { users: 1000 });
  } finally {
    await first.stop({ remove: false });
  }
  const { world, owners } = provisioned;
  const tenant = world.tenants[0]!;
  try {
    opts.log(`  seeding ${opts.rows.toLocaleString('en-US')} usage rows through the store …`);
    seedS = await seedUsageRows({ dataDir: first.dataDir, tenantId: tenant.id, deviceIds: tenant.device_ids, towerIds: world.towers.map((t) => t.id), rows: opts.rows, days: 7, until: Date.now(), violationEvery: 100 });
    opts.log(`  seeded in ${seedS.toFixed(1)} s`);
  } catch (err) {
    await first.stop({ remove: true });
    throw err;
  }
  const cp = await startBenchControlPlane({ dataDir: first.dataDir, adminPassword: first.adminPassword, args: ['--rate-limit-per-min', '1000000000'] });
  const helloScript = siblingScript(import.meta.url, 'hello-server');
  const hello = await spawnAndWait(nodeArgsFor(helloScript), (l) => {
    try {
      return (JSON.parse(l) as { port?: number }).port;
    } catch {
      return undefined;
    }
  });
  try {
    const owner = owners[0]!;
    const api = await ApiClient.login(cp.urls.http, owner.email, owner.password);
    const token = (await (await fetch(`${cp.urls.http}/api/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: owner.email, password: owner.password }) })).json()) as { access_token: string };
    const auth = { authorization: `Bearer ${token.access_token}` };

    const h = await run(`http://127.0.0.1:${hello.value}/hello`, opts.connections);
    opts.log(`  hello world: ${Math.round(h.requests.average)} req/s (p99 ${h.latency.p99} ms)`);
    const throughput: ThroughputRow[] = [];
    for (const path of ['/api/v1/tenant', '/api/v1/devices', '/api/v1/policies', '/api/v1/policy-rules', '/api/v1/remedial-actions', '/api/v1/app-usage', '/api/v1/dashboard/alerts']) {
      const rows = itemsOn(await api.get<Record<string, unknown>>(path));
      const r = await run(`${cp.urls.http}${path}`, opts.connections, auth);
      const row = { path, requests_per_s: r.requests.average, p99_ms: r.latency.p99, non2xx: r.non2xx, ratio_to_hello: r.requests.average / h.requests.average, rows_first_page: rows };
      throughput.push(row);
      opts.log(`  ${path}: ${Math.round(row.requests_per_s)} req/s (${(row.ratio_to_hello * 100).toFixed(1)} % of hello, ${rows} rows), p99 ${row.p99_ms} ms${row.non2xx ? `, ${row.non2xx} non-2xx!` : ''}`);
    }

    const device = tenant.device_ids[7]!;
    const someUsage = await api.get<{ usage: Array<{ user_id: string | null }> }>(`/api/v1/app-usage?device_id=${device}&limit=1`);
    const user = someUsage.usage[0]?.user_id;
    const since = Date.now() - 86_400_000;
    const latencyPaths = [
      '/api/v1/app-usage',
      `/api/v1/app-usage?device_id=${device}`,
      ...(user ? [`/api/v1/app-usage?user_id=${user}`] : []),
      // No index either (migration 10): a tower's share of the traffic is the world's 1 in N towers.
      `/api/v1/app-usage?tower_id=${world.towers[0]!.id}`,
      '/api/v1/app-usage?app=dropbox',
      '/api/v1/app-usage?effect=deny',
      `/api/v1/app-usage?since=${since}`,
      '/api/v1/dashboard/alerts',
    ];
    const latency: LatencyRow[] = [];
    for (const path of latencyPaths) {
      const page = await api.get<{ usage?: unknown[]; alerts?: unknown[] }>(path);
      const r = await run(`${cp.urls.http}${path}`, 1, auth);
      const row = { path, p50_ms: r.latency.p50, p99_ms: r.latency.p99, max_ms: r.latency.max, requests: r.requests.total, rows_first_page: (page.usage ?? page.alerts ?? []).length, non2xx: r.non2xx };
      latency.push(row);
      opts.log(`  ${path}: p50 ${row.p50_ms} ms, p99 ${row.p99_ms} ms (${row.rows_first_page} rows on the first page)`);
    }
    return { usage_rows: opts.rows, seed_s: seedS, connections: opts.connections, seconds: opts.seconds, hello: { requests_per_s: h.requests.average, p99_ms: h.latency.p99 }, throughput, latency };
  } finally {
    await hello.child.stop();
    await cp.stop({ remove: true });
  }
}

/** Items a list page holds (its one array), 1 for a single resource. */
function itemsOn(body: Record<string, unknown>): number {
  const list = Object.values(body).find(Array.isArray);
  return list ? list.length : 1;
}

export function printApi(r: ApiBenchResult, log: (s: string) => void, fmt: (n: number, d?: number) => string): void {
  log(`  (i) API, autocannon ${r.connections} connections × ${r.seconds} s, ${fmt(r.usage_rows)} usage rows in SQLite   target: lists ≥ 50 % of hello world; p99 ≤ 20 ms`);
  log(`      Fastify hello world                     ${fmt(r.hello.requests_per_s).padStart(8)} req/s   p99 ${fmt(r.hello.p99_ms, 1)} ms`);
  for (const t of r.throughput) {
    const label = t.path === '/api/v1/tenant' ? `${t.path} (floor: one row)` : t.path;
    log(`      ${label.padEnd(40)}${fmt(t.requests_per_s).padStart(8)} req/s   ${fmt(t.ratio_to_hello * 100, 1).padStart(5)} %   p99 ${fmt(t.p99_ms, 1)} ms   ${String(t.rows_first_page).padStart(3)} rows${t.non2xx ? `   ${t.non2xx} non-2xx` : ''}`);
  }
  log('      one connection (no queueing)                        p50 ms   p99 ms   max ms   rows/page');
  for (const l of r.latency) log(`      ${l.path.slice(0, 52).padEnd(52)} ${fmt(l.p50_ms, 1).padStart(6)} ${fmt(l.p99_ms, 1).padStart(8)} ${fmt(l.max_ms, 1).padStart(8)} ${String(l.rows_first_page).padStart(10)}`);
}
