/**
 * Keeps one compiled PolicyIndex per tenant in memory, rebuilds it when the tenant's policy
 * version changes (bus 'policy.changed'), and republishes the tenant's retained PolicyBundle so
 * towers enforce the same rules. Invalidation is immediate; the rebuild happens on the next event
 * or after a short debounce, whichever comes first, so a burst of API edits costs one rebuild.
 */
import { compilePolicyIndex, type PolicyIndex } from '../shared/policy/compile-policy-index.js';
import { bundleFromModel, modelFromSnapshot, type PolicyModel } from '../shared/policy/model.js';
import { encodePayload } from '../shared/mqtt/payloads.js';
import { topics } from '../shared/mqtt/topics.js';
import type { Plan, PolicyRule, Severity } from '../shared/domain.js';
import type { WorkerContext } from './context.js';

export interface TenantPolicyState {
  index: PolicyIndex;
  alertWindowS: number;
  /** The tenant's plan at compile time: a plan change bumps the policy version. */
  plan: Plan;
  /** Rules by id, for what the index does not carry (remediation, escalation). */
  rules: Map<string, PolicyRule>;
  /** A policy's current severity (answering a stored decision again). */
  policySeverity(policyId: string): Severity | undefined;
}

interface Entry {
  state: TenantPolicyState | null;
  /** Bumped by every invalidation; a build started under an older generation is stale. */
  generation: number;
  builtGeneration: number;
  building: Promise<TenantPolicyState | null> | null;
}

/** How long one process owns publishing a bundle version. */
const BUNDLE_LEASE_MS = 10 * 60_000;

export interface PolicyEngineOptions {
  /** Coalesces bursts of changes into one rebuild + bundle publish. */
  rebuildDebounceMs?: number;
}

export class PolicyEngine {
  readonly #ctx: WorkerContext;
  readonly #debounceMs: number;
  readonly #entries = new Map<string, Entry>();
  /** The model each index was compiled from: the source of the tenant's PolicyBundle. */
  readonly #models = new Map<string, PolicyModel>();
  /** Platform-wide device → tenant, for the cross-tenant check. */
  readonly #directory = new Map<string, string>();
  readonly #devicesOf = new Map<string, Set<string>>();
  readonly #timers = new Map<string, NodeJS.Timeout>();
  readonly #pending = new Set<Promise<unknown>>();
  #unsubscribe: (() => void) | null = null;

  constructor(ctx: WorkerContext, opts: PolicyEngineOptions = {}) {
    this.#ctx = ctx;
    this.#debounceMs = opts.rebuildDebounceMs ?? 20;
  }

  async start(): Promise<void> {
    for (const { device_id, tenant_id } of await this.#ctx.store.devices.directory()) {
      this.#setDevice(device_id, tenant_id);
    }
    // Cluster scope: a change made through any API process invalidates every worker's index.
    this.#unsubscribe = this.#ctx.bus.subscribe('policy.changed', (e) => this.invalidate(e.tenant_id), this, 'cluster');
    // Retained bundles may be missing (fresh broker) or stale: publish every tenant's current one.
    let cursor: string | null = null;
    do {
      const page = await this.#ctx.store.tenants.list({ limit: 500, cursor });
      for (const t of page.items) await this.refresh(t.id);
      cursor = page.next_cursor;
    } while (cursor);
  }

  async stop(): Promise<void> {
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
    await Promise.allSettled([...this.#pending]);
  }

  tenantOfDevice = (deviceId: string): string | undefined => this.#directory.get(deviceId);

  /** Marks the tenant's index stale now and schedules a rebuild + bundle publish. */
  invalidate(tenantId: string): void {
    const e = this.#entry(tenantId);
    e.generation++;
    const prev = this.#timers.get(tenantId);
    if (prev) clearTimeout(prev);
    this.#timers.set(
      tenantId,
      setTimeout(() => {
        this.#timers.delete(tenantId);
        this.#track(this.refresh(tenantId));
      }, this.#debounceMs),
    );
  }

  /** The tenant's current compiled policy, or null for an unknown tenant. */
  async stateFor(tenantId: string): Promise<TenantPolicyState | null> {
    const e = this.#entry(tenantId);
    if (e.state && e.builtGeneration === e.generation) return e.state;
    return this.#build(tenantId, e);
  }

  /** Rebuilds (if needed) and publishes the retained bundle. */
  async refresh(tenantId: string): Promise<void> {
    const e = this.#entry(tenantId);
    const state = e.builtGeneration === e.generation && e.state ? e.state : await this.#build(tenantId, e);
    if (!state) return;
    await this.#publishBundle(state);
  }

  #entry(tenantId: string): Entry {
    let e = this.#entries.get(tenantId);
    if (!e) {
      e = { state: null, generation: 1, builtGeneration: 0, building: null };
      this.#entries.set(tenantId, e);
    }
    return e;
  }

  async #build(tenantId: string, e: Entry): Promise<TenantPolicyState | null> {
    // Concurrent callers share one build; a change during the build triggers another.
    while (true) {
      if (!e.building) {
        const gen = e.generation;
        e.building = (async () => {
          try {
            const snapshot = await this.#ctx.store.policySnapshot(tenantId);
            if (!snapshot) {
              e.state = null;
              e.builtGeneration = gen;
              return null;
            }
            const model = modelFromSnapshot(snapshot);
            const severities = new Map(snapshot.policies.map((p) => [p.id, p.severity]));
            this.#replaceDevices(tenantId, model);
            e.state = {
              index: compilePolicyIndex(model),
              alertWindowS: snapshot.tenant.alert_window_s,
              plan: snapshot.plan,
              rules: new Map(snapshot.rules.map((r) => [r.id, r])),
              policySeverity: (id) => severities.get(id),
            };
            this.#models.set(tenantId, model);
            e.builtGeneration = gen;
            this.#ctx.counters.inc('policy_index_builds_total');
            return e.state;
          } finally {
            e.building = null;
          }
        })();
      }
      const state = await e.building;
      if (e.builtGeneration === e.generation) return state;
    }
  }


  async #publishBundle(state: TenantPolicyState): Promise<void> {
    const model = this.#models.get(state.index.tenantId);
    if (!model) return;
    // One publisher per bundle version in the cluster: every worker rebuilds its index, only the
    // lease holder republishes the retained bundle (a worker starting later within the lease
    // does not republish an unchanged version).
    const lease = `bundle.${model.tenant_id}.${model.version}`;
    if (!(await this.#ctx.leases.acquire(lease, this.#ctx.processId, this.#ctx.now(), BUNDLE_LEASE_MS))) return;
    const bundle = bundleFromModel(model, this.#ctx.newId(), this.#ctx.now());
    await this.#ctx.downlink.publish(topics.policy(model.tenant_id), encodePayload(bundle), { retain: true });
    this.#ctx.counters.inc('policy_bundles_published_total');
  }

  #replaceDevices(tenantId: string, model: PolicyModel): void {
    const old = this.#devicesOf.get(tenantId);
    if (old) for (const d of old) if (this.#directory.get(d) === tenantId) this.#directory.delete(d);
    const next = new Set<string>();
    for (const d of model.devices) {
      next.add(d.id);
      this.#directory.set(d.id, tenantId);
    }
    this.#devicesOf.set(tenantId, next);
  }

  #setDevice(deviceId: string, tenantId: string): void {
    this.#directory.set(deviceId, tenantId);
    let set = this.#devicesOf.get(tenantId);
    if (!set) this.#devicesOf.set(tenantId, (set = new Set()));
    set.add(deviceId);
  }

  #track(p: Promise<unknown>): void {
    const tracked = p.catch((err: unknown) => {
      this.#ctx.counters.inc('policy_refresh_errors_total');
      this.#ctx.logger.error({ err }, 'policy refresh failed');
    });
    this.#pending.add(tracked);
    void tracked.finally(() => this.#pending.delete(tracked));
  }
}
