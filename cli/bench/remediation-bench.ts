/**
 * `bench --only remediation`: the remediation round trip through `edgeplane start` with real agents
 * (load-fleet.ts) — a violation observed at the tower → its DecisionBatch → the remediation
 * command applied at the tower → its ack recorded in the cloud — at a steady offered load with a
 * fixed share of violations (each on a device that has not violated before, so each expects its
 * own command). Two figures per violation: applied at the tower (the agent's clock) and acked in
 * the cloud (the command's stored acked_at, the server's wall clock on this same host, ms).
 * A warm-up without violations comes first, unreported.
 */
import { ApiClient } from '../../simulator/api-client.js';
import { provisionBenchWorld } from './bench-world.js';
import { startBenchControlPlane } from './control-plane.js';
import { LoadFleet, type PlayResult } from './load-fleet.js';

export interface RemediationBenchResult {
  offered_eps: number;
  violation_percent: number;
  seconds: number;
  violations: number;
  commands_applied_at_tower: number;
  commands_acked_in_cloud: number;
  applied_at_tower_ms: { p50: number; p99: number; max: number };
  acked_in_cloud_ms: { p50: number; p99: number; max: number };
  decisions: PlayResult['latency_ms'] & { achieved_eps: number; undecided: number };
}

interface CommandRow {
  device_id: string;
  status: string;
  acked_at: number | null;
}

const pct = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
const summary = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { p50: pct(s, 0.5), p99: pct(s, 0.99), max: s[s.length - 1] ?? 0 };
};

export async function benchRemediation(opts: { rateEps: number; violationPercent: number; seconds: number; warmupSeconds: number; log: (s: string) => void }): Promise<RemediationBenchResult> {
  const every = Math.max(1, Math.round(100 / opts.violationPercent));
  const expected = Math.ceil((opts.rateEps * opts.seconds) / every);
  // Enough devices for one fresh violator per violation (two devices per user).
  const users = Math.max(250, Math.ceil((expected * 1.2) / 2));
  const cp = await startBenchControlPlane();
  try {
    const { world, owners } = await provisionBenchWorld(cp.urls, cp.adminPassword, { users });
    const fleet = new LoadFleet(world, cp.urls.mqtt);
    await fleet.start();
    try {
      await fleet.play({ rateEps: opts.rateEps, seconds: opts.warmupSeconds });
      const r = await fleet.play({ rateEps: opts.rateEps, seconds: opts.seconds, violationEvery: every, drainTimeoutMs: 15_000 });
      const owner = owners[0]!;
      const api = await ApiClient.login(cp.urls.http, owner.email, owner.password);
      const acked = new Map<string, number>();
      for (let cursor: string | null = null; ; ) {
        const page: { remedial_actions: CommandRow[]; next_cursor: string | null } = await api.get(`/api/v1/remedial-actions?limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
        for (const c of page.remedial_actions) if (c.acked_at !== null) acked.set(c.device_id, c.acked_at);
        if (!page.next_cursor) break;
        cursor = page.next_cursor;
      }
      const tower = r.violations.flatMap((v) => (v.applied_after_ms === null ? [] : [v.applied_after_ms]));
      const cloud = r.violations.flatMap((v) => {
        const at = acked.get(v.device_id);
        return at === undefined ? [] : [at - v.observed_at];
      });
      const result: RemediationBenchResult = {
        offered_eps: opts.rateEps,
        violation_percent: 100 / every,
        seconds: r.playback_s,
        violations: r.violations.length,
        commands_applied_at_tower: tower.length,
        commands_acked_in_cloud: cloud.length,
        applied_at_tower_ms: summary(tower),
        acked_in_cloud_ms: summary(cloud),
        decisions: { ...r.latency_ms, achieved_eps: r.achieved_eps, undecided: r.undecided },
      };
      opts.log(
        `  ${result.violations} violations at ${opts.rateEps} ev/s: applied at the tower ${tower.length} (p99 ${result.applied_at_tower_ms.p99.toFixed(1)} ms), ` +
          `acked in the cloud ${cloud.length} (p99 ${result.acked_in_cloud_ms.p99} ms)`,
      );
      return result;
    } finally {
      await fleet.stop();
    }
  } finally {
    await cp.stop();
  }
}

export function printRemediation(r: RemediationBenchResult, log: (s: string) => void, fmt: (n: number, d?: number) => string): void {
  log(`  (h) remediation round trip at ${fmt(r.offered_eps)} events/s, ${fmt(r.violation_percent, 1)} % violations, ${fmt(r.seconds, 0)} s   target: acked in the cloud p99 ≤ 100 ms`);
  log(`      violation observed → command applied at the tower   p50 ${fmt(r.applied_at_tower_ms.p50, 1)} ms   p99 ${fmt(r.applied_at_tower_ms.p99, 1)} ms   max ${fmt(r.applied_at_tower_ms.max, 1)} ms   (${r.commands_applied_at_tower}/${r.violations})`);
  log(`      violation observed → ack recorded in the cloud      p50 ${fmt(r.acked_in_cloud_ms.p50, 0)} ms   p99 ${fmt(r.acked_in_cloud_ms.p99, 0)} ms   max ${fmt(r.acked_in_cloud_ms.max, 0)} ms   (${r.commands_acked_in_cloud}/${r.violations})`);
  log(`      decisions meanwhile: ${fmt(r.decisions.achieved_eps)} ev/s, p50 ${fmt(r.decisions.p50, 2)} ms, p99 ${fmt(r.decisions.p99, 2)} ms, undecided ${r.decisions.undecided}`);
}
