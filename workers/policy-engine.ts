/**
 * Keeps one compiled PolicyIndex per tenant in memory, rebuilds it when the tenant's policy
 * version changes (bus 'policy.changed'), and republishes the tenant's edge bundles
 * (bundle-publisher.ts) so towers decide with the same rules. Invalidation is immediate; the
 * rebuild happens on the next event or after a short debounce, whichever comes first, so a burst
 * of API edits costs one rebuild. When every version since the last build was announced as a
 * rule-side change (bus scope 'rules'), the rebuild re-reads only the rule side and keeps the
 * inventory it holds: a rule edit in a tenant of 100,000 devices does not re-read them.
 */
import { randomBytes } from 'node:crypto';
import { compilePolicyIndex, type PolicyIndex } from '../shared/policy/compile-policy-index.js';
import { modelFromRulesSnapshot, modelFromSnapshot, type PolicyModel } from '../shared/policy/model.js';
import type { PolicyChangeScope, PolicyRulesSnapshot } from '../shared/store/port.js';
import type { Plan, PolicyRule, Severity } from '../shared/domain.js';
import { BundlePublisher } from './bundle-publisher.js';
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
  /** Versions announced as rule-side changes only, newer than the last build (bounded). */
  rulesOnly: Set<number>;
  /** When the last scheduled refresh ended, and how long its rebuild took (ctx clock, ms). */
  refreshedAt: number;
  buildMs: number;
  /** The first change since the last scheduled refresh began (ctx clock), or null. */
  pendingSince: number | null;
}

/** A burst of changes (a script creating rules one by one) still refreshes at least this often. */
const REFRESH_MAX_WAIT_MS = 1000;

/** More rule-only versions pending than this: forget them (the next build reads everything). */
const MAX_RULES_ONLY_PENDING = 10_000;

export interface PolicyEngineOptions {
  /** Coalesces bursts of changes into one rebuild + bundle publish (see invalidate). */
  rebuildDebounceMs?: number;
  /**
   * The device directory key (edge-bundle.ts: deriveDirectoryKey), the same in every process of
   * the deployment. Default: a random key for this process (tests, single-process tools).
   */
  directoryKey?: Buffer;
  /** The bundle publisher lease (bundle-publisher.ts); default 15 s. */
  publisherLeaseMs?: number;
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
  readonly #publisher: BundlePublisher;
  #unsubscribe: (() => void) | null = null;
  #unsubscribeServe: (() => void) | null = null;
  #unsubscribeMissed: (() => void) | null = null;
  #renewTimer: NodeJS.Timeout | null = null;

  constructor(ctx: WorkerContext, opts: PolicyEngineOptions = {}) {
    this.#ctx = ctx;
    this.#debounceMs = opts.rebuildDebounceMs ?? 20;
    this.#publisher = new BundlePublisher(ctx, opts.directoryKey ?? randomBytes(32), opts.publisherLeaseMs);
  }

  async start(): Promise<void> {
    for (const { device_id, tenant_id } of await this.#ctx.store.devices.directory()) {
      this.#setDevice(device_id, tenant_id);
    }
    // Cluster scope: a change made through any API process invalidates every worker's index.
    this.#unsubscribe = this.#ctx.bus.subscribe('policy.changed', (e) => this.invalidate(e.tenant_id, e), this, 'cluster');
    this.#unsubscribeServe = this.#ctx.bus.subscribe('bundle.serve', (e) => this.#track(this.#publisher.serveRequested(e.tenant_id, e.tower_id)), this, 'cluster');
    // Changes announced while the bus was disconnected never arrive: nothing held can be trusted.
    this.#unsubscribeMissed = this.#ctx.bus.onMissedEvents?.(() => this.#invalidateAll(), this) ?? null;
    await this.#claim();
    // Retained bundles may be missing (fresh broker) or stale: publish every tenant's current one.
    await this.#refreshAll();
    this.#track(this.#sweepOrphans());
    this.#renewTimer = setInterval(() => this.#track(this.claimPublishing()), this.#publisher.renewMs);
    this.#renewTimer.unref();
  }

  async stop(): Promise<void> {
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    this.#unsubscribeServe?.();
    this.#unsubscribeServe = null;
    this.#unsubscribeMissed?.();
    this.#unsubscribeMissed = null;
    if (this.#renewTimer) clearInterval(this.#renewTimer);
    this.#renewTimer = null;
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
    await Promise.allSettled([...this.#pending]);
    // Handed back at once, so another process publishes from its next renewal, not after the lease
    // (if the lease store cannot be reached, the lease runs out instead).
    await this.#publisher.resign().catch((err: unknown) => this.#ctx.logger.warn({ err, event: 'bundle_publisher_claim_failed' }, 'could not hand the bundle publisher lease back'));
  }

  /** Whether this process publishes the cluster's edge bundles (bundle-publisher.ts). */
  get publishing(): boolean {
    return this.#publisher.publishing;
  }

  /**
   * Claims or renews the bundle publisher lease (every few seconds, and at start); a process that
   * has just become the publisher republishes every tenant whole. A failed claim is logged and
   * retried at the next renewal (the lease lapses meanwhile).
   */
  async claimPublishing(): Promise<void> {
    if (await this.#claim()) await this.#refreshAll();
    await this.#sweepOrphans();
  }

  /** Clears the retained documents of tenants that are gone, once per claim (bundle-publisher.ts). */
  async #sweepOrphans(): Promise<void> {
    await this.#publisher.sweepOrphans(async () => {
      const ids = new Set<string>();
      for await (const id of this.#tenantIds()) ids.add(id);
      return ids;
    });
  }

  /** Every tenant in the store, by page. */
  async *#tenantIds(): AsyncGenerator<string> {
    let cursor: string | null = null;
    do {
      const page = await this.#ctx.store.tenants.list({ limit: 500, cursor });
      for (const t of page.items) yield t.id;
      cursor = page.next_cursor;
    } while (cursor);
  }

  async #claim(): Promise<boolean> {
    try {
      return await this.#publisher.claim();
    } catch (err) {
      this.#ctx.logger.warn({ err, event: 'bundle_publisher_claim_failed' }, 'could not claim or renew the bundle publisher lease');
      return false;
    }
  }

  async #refreshAll(): Promise<void> {
    for await (const id of this.#tenantIds()) await this.refresh(id);
  }

  tenantOfDevice = (deviceId: string): string | undefined => this.#directory.get(deviceId);

  /**
   * Marks the tenant's index stale now and schedules a rebuild + bundle publish. `change` names
   * the version and what it can alter (no scope: anything).
   */
  invalidate(tenantId: string, change?: { version: number; scope?: PolicyChangeScope | undefined }): void {
    const e = this.#entry(tenantId);
    e.generation++;
    if (change?.scope === 'rules') {
      if (e.rulesOnly.size >= MAX_RULES_ONLY_PENDING) e.rulesOnly.clear();
      e.rulesOnly.add(change.version);
    }
    // Debounced: the refresh comes once changes pause for the debounce, but at most
    // REFRESH_MAX_WAIT_MS after the first of them; and after a refresh whose rebuild took long (a
    // 100,000-device tenant's inventory), not before as long again has passed. A
    // bulk import of such a tenant, one call after another, otherwise rebuilt and republished
    // everything after every call and kept the control plane rebuilding instead of importing.
    // The rebuild, not the whole refresh: publishing waits on the broker's writes, and spacing by
    // that wait delayed a small tenant's next rule change by tens of ms for nothing.
    const now = this.#ctx.now();
    e.pendingSince ??= now;
    const quiet = Math.min(now + this.#debounceMs, e.pendingSince + REFRESH_MAX_WAIT_MS);
    const at = Math.max(quiet, e.refreshedAt + e.buildMs);
    const prev = this.#timers.get(tenantId);
    if (prev) clearTimeout(prev);
    this.#timers.set(
      tenantId,
      setTimeout(() => {
        this.#timers.delete(tenantId);
        e.pendingSince = null;
        this.#track(this.refresh(tenantId).finally(() => (e.refreshedAt = this.#ctx.now())));
      }, Math.max(0, at - now)),
    );
  }

  /** Every tenant held is stale: the next event rebuilds it, and its bundles are refreshed. */
  #invalidateAll(): void {
    for (const tenantId of [...this.#entries.keys()]) this.invalidate(tenantId);
  }

  /** The tenant's current compiled policy, or null for an unknown tenant. */
  async stateFor(tenantId: string): Promise<TenantPolicyState | null> {
    const e = this.#entry(tenantId);
    if (e.state && e.builtGeneration === e.generation) return e.state;
    const state = await this.#build(tenantId, e);
    // A tower may name any tenant id in its usage topic (the ACL cannot know which it serves):
    // an unknown one is not remembered, or every id tried would stay in memory for good.
    if (!state) this.#forget(tenantId, e);
    return state;
  }

  /** Tenants this process holds state for (metrics, tests). */
  get tenantsHeld(): number {
    return this.#entries.size;
  }

  /** Rebuilds (if needed) and publishes the tenant's edge bundles. */
  async refresh(tenantId: string): Promise<void> {
    const e = this.#entry(tenantId);
    let state = e.builtGeneration === e.generation ? e.state : null;
    if (!state) {
      const started = this.#ctx.now();
      state = await this.#build(tenantId, e);
      e.buildMs = this.#ctx.now() - started;
    }
    const model = this.#models.get(tenantId);
    if (!state) {
      // The tenant is gone: its bundles and directory slice go too.
      if (model) {
        this.#models.delete(tenantId);
        await this.#publisher.removeTenant(tenantId);
      }
      this.#forget(tenantId, e);
      return;
    }
    if (model) await this.#publisher.publishTenant(model);
  }

  /**
   * An event of the tenant from this tower was stored: the tower serves the tenant and gets its
   * policy bundle (once per version). Never throws: a failed publish is retried at the next change.
   */
  serve(tenantId: string, towerId: string): void {
    if (this.#publisher.needsServing(tenantId, towerId)) this.#track(this.#publisher.serve(tenantId, towerId));
  }

  #entry(tenantId: string): Entry {
    let e = this.#entries.get(tenantId);
    if (!e) {
      e = { state: null, generation: 1, builtGeneration: 0, building: null, rulesOnly: new Set(), refreshedAt: 0, buildMs: 0, pendingSince: null };
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
            const read = await this.#read(tenantId, e);
            if (!read) {
              e.state = null;
              e.builtGeneration = gen;
              return null;
            }
            const { snapshot, model } = read;
            const severities = new Map(snapshot.policies.map((p) => [p.id, p.severity]));
            for (const v of e.rulesOnly) if (v <= model.version) e.rulesOnly.delete(v);
            if (model.devices !== this.#models.get(tenantId)?.devices) this.#replaceDevices(tenantId, model);
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

  /**
   * The tenant's current model: the rule side over the inventory held when every version since
   * the held model was announced as rule-side only, otherwise a whole snapshot.
   */
  async #read(tenantId: string, e: Entry): Promise<{ snapshot: PolicyRulesSnapshot; model: PolicyModel } | null> {
    const held = this.#models.get(tenantId);
    if (held && e.rulesOnly.size > 0) {
      const side = await this.#ctx.store.policyRulesSnapshot(tenantId);
      if (!side) return null;
      const version = side.tenant.policy_version;
      let covered = version >= held.version;
      for (let v = held.version + 1; covered && v <= version; v++) covered = e.rulesOnly.has(v);
      if (covered) {
        this.#ctx.counters.inc('policy_index_rule_side_builds_total');
        return { snapshot: side, model: modelFromRulesSnapshot(side, held) };
      }
    }
    const snapshot = await this.#ctx.store.policySnapshot(tenantId);
    return snapshot && { snapshot, model: modelFromSnapshot(snapshot) };
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

  /** Drops the entry of a tenant that does not exist, unless a change or build is under way. */
  #forget(tenantId: string, e: Entry): void {
    if (this.#entries.get(tenantId) !== e || e.state || e.building || this.#timers.has(tenantId) || this.#models.has(tenantId)) return;
    this.#entries.delete(tenantId);
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
