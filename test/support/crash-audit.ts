/**
 * Shared pieces of the crash audits (test/e2e/audit-crash-*.test.ts): a ledger of what the towers
 * observed and what the cloud answered, a steady load from real edge agents, a provisioned world
 * on a running distributed topology, and the stored usage rows read back through the API.
 */
import { readFileSync } from 'node:fs';
import { EdgeAgent } from '../../edge-agent/edge-agent.js';
import { ApiClient } from '../../simulator/api-client.js';
import { provisionWorld, type TenantOwnerLogin } from '../../simulator/provision.js';
import { parseScenario } from '../../simulator/scenario.js';
import type { ProvisionedWorld } from '../../simulator/world.js';
import { TOPOLOGY_ADMIN_EMAIL, TOPOLOGY_ADMIN_PASSWORD, type Topology } from './topology.js';

/** Two towers, one tenant, usage that is always allowed (no commands in the way). */
export function crashScenario(name: string, towers = 2) {
  return parseScenario({
    name,
    seed: 11,
    duration_s: 1,
    rate_eps: 100,
    towers: { count: towers, id_prefix: `${name}-tower` },
    batch: { max_events: 20, max_delay_ms: 5 },
    tenants: [
      {
        name: `${name}-co`,
        plan: 'premium',
        default_effect: 'allow',
        apps: ['slack'],
        actions: ['send_message'],
        roles: [{ name: 'member' }],
        policies: [],
        users: { count: 4, roles: ['member'] },
        devices_per_user: 1,
        mix: [{ app: 'slack', action: 'send_message', weight: 1 }],
      },
    ],
    violations: { count: 0, pick: [] },
  });
}

/**
 * What the towers observed, every decision they applied (the cloud's or their own when the
 * cloud's was late) and which events the cloud answered (a DecisionBatch from a worker).
 */
export class Ledger {
  readonly observed = new Set<string>();
  readonly decided = new Map<string, number>();
  readonly cloudAnswered = new Map<string, number>();
  /** When each event was observed, and the cloud's first answer's delay (ms), in answer order. */
  readonly observedAt = new Map<string, number>();
  readonly answerDelays: number[] = [];
  #waiters: Array<() => void> = [];

  decision(eventId: string): void {
    this.decided.set(eventId, (this.decided.get(eventId) ?? 0) + 1);
    this.#wake();
  }

  observe(eventId: string): void {
    this.observed.add(eventId);
    this.observedAt.set(eventId, Date.now());
  }

  cloudAnswer(eventId: string): void {
    const at = this.observedAt.get(eventId);
    if (at !== undefined && !this.cloudAnswered.has(eventId)) this.answerDelays.push(Date.now() - at);
    this.cloudAnswered.set(eventId, (this.cloudAnswered.get(eventId) ?? 0) + 1);
    this.#wake();
  }

  unansweredByCloud(): string[] {
    return [...this.observed].filter((id) => !this.cloudAnswered.has(id));
  }

  /** Median delay of the cloud's answers from the `from`-th answer on (ms). */
  medianDelay(from = 0): number {
    const d = this.answerDelays.slice(from).sort((a, b) => a - b);
    return d.length === 0 ? NaN : d[Math.floor(d.length / 2)]!;
  }

  /** Events a tower applied a decision for more than once. */
  duplicates(): string[] {
    return [...this.decided].filter(([, n]) => n > 1).map(([id]) => id);
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  /** Resolves once `cond` holds, re-checked on every decision (and every second); rejects after `timeoutMs`. */
  async until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!cond()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 1000));
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }
}

/** Polls `cond` every 50 ms (for conditions no event signals); rejects after `timeoutMs`. */
export async function until(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface Fleet {
  world: ProvisionedWorld;
  owner: TenantOwnerLogin;
  agents: EdgeAgent[];
  ledger: Ledger;
  /** Starts `perTick` events every 20 ms spread over the towers; returns the stop function. */
  play(perTick: number): () => void;
  stop(): Promise<void>;
}

/** Provisions `scenario` through the topology's API and starts one real agent per tower. */
export async function startFleet(topo: Topology, scenario: ReturnType<typeof crashScenario>): Promise<Fleet> {
  const p = await provisionWorld(scenario, { apiUrl: topo.api.httpUrl, adminEmail: TOPOLOGY_ADMIN_EMAIL, adminPassword: TOPOLOGY_ADMIN_PASSWORD });
  const world = p.world;
  const tenant = world.tenants[0]!;
  const ledger = new Ledger();
  const nodes = topo.brokers.map((b) => b.mqttUrl!);
  const agents = world.towers.map((t, i) => {
    // Each tower lists every node, starting from its own.
    const url = [...nodes.slice(i % nodes.length), ...nodes.slice(0, i % nodes.length)].join(',');
    const agent = new EdgeAgent({ url, towerId: t.id, password: t.password, batchMaxEvents: 20, batchMaxDelayMs: 5, reconnectMinMs: 100, reconnectMaxMs: 1000 });
    agent.on('decision', (_tenant, d) => ledger.decision(d.event_id));
    agent.on('decisionBatch', (_tenant, b) => {
      for (const d of b.decisions) ledger.cloudAnswer(d.event_id);
    });
    // Connection errors while a process is down are the point of these tests; the agent reconnects.
    agent.on('error', () => {});
    return agent;
  });
  await Promise.all(agents.map((a) => a.start()));
  await until(() => agents.every((a) => tenant.device_ids.every((d) => a.tenantOf(d) === tenant.id)), 30_000, 'policy bundles at every tower');
  let n = 0;
  return {
    world,
    owner: p.owners[0]!,
    agents,
    ledger,
    play(perTick) {
      const timer = setInterval(() => {
        for (let i = 0; i < perTick; i++, n++) {
          const agent = agents[n % agents.length]!;
          const r = agent.observe({ device_id: tenant.device_ids[n % tenant.device_ids.length]!, app: 'slack', action: 'send_message' });
          ledger.observe(r.event_id);
        }
      }, 20);
      return () => clearInterval(timer);
    },
    async stop() {
      await Promise.all(agents.map((a) => a.stop()));
    },
  };
}

/** Usage rows of the owner's tenant read through the API: count per event id. */
export async function storedUsage(apiUrl: string, owner: TenantOwnerLogin): Promise<Map<string, number>> {
  const api = await ApiClient.login(apiUrl, owner.email, owner.password);
  const stored = new Map<string, number>();
  let cursor: string | null = null;
  do {
    const page: { usage: Array<{ id: string }>; next_cursor: string | null } = await api.get(
      `/api/v1/app-usage?limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
    );
    for (const r of page.usage) stored.set(r.id, (stored.get(r.id) ?? 0) + 1);
    cursor = page.next_cursor;
  } while (cursor);
  return stored;
}

/** A role's counters (its /metrics), by name, summed over labels. */
export async function metricsOf(httpUrl: string): Promise<(name: string) => number> {
  const text = await (await fetch(`${httpUrl}/metrics`)).text();
  return (name) => {
    let sum = 0;
    for (const m of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)`, 'gm'))) sum += Number(m[1]);
    return sum;
  };
}

/** The state letter of a Linux process (R running, S sleeping, T stopped …). */
export function processState(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
}
