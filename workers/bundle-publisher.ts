/**
 * Publishes what towers decide from (shared/policy/edge-bundle.ts): each tenant's policy bundle to
 * the towers that serve it — where its devices were seen (store: towers.listSeenByTenant) — and
 * the tenant's slice of the device directory to every tower. A tower that starts serving a tenant
 * (its first stored event of that tenant) gets the tenant's bundle at once (`serve`).
 *
 * Retained documents: parts first, then the head that names them, so a tower never holds a head
 * without the parts being on their way. A part whose content this process already published on
 * that topic is not sent again (a rule change re-sends the bundle's head and the part holding the
 * rule; a new device re-sends one directory part). After rule-side changes only, the model keeps
 * its inventory by reference (policy-engine.ts), and what depends on the inventory alone — the
 * directory slice, the owners' profiles — is not computed again. One process publishes each version (a lease);
 * another process that later sees a tower start serving the tenant publishes to that tower alone.
 *
 * A tenant's publications take turns: a refresh that starts while an older one still waits on the
 * broker goes after it. Run side by side, the older one's writes could land last and the broker
 * would retain its stale directory or bundle — what every tower that connects later receives.
 */
import { encodePayload } from '../shared/mqtt/payloads.js';
import { topics } from '../shared/mqtt/topics.js';
import { buildDirectorySlice, buildPolicyBundle, directoryEntry, directoryToken, inventoryProfiles, type InventoryProfiles, type PartedDocument } from '../shared/policy/edge-bundle.js';
import type { PolicyModel } from '../shared/policy/model.js';
import type { PolicyBundle } from '../shared/mqtt/payloads.js';
import type { WorkerContext } from './context.js';

/** How long one process owns publishing a bundle version. */
const BUNDLE_LEASE_MS = 10 * 60_000;

type BundleContent = PartedDocument<Omit<PolicyBundle, 'id' | 'tower_id' | 'published_at'>>;

interface TenantBundle {
  version: number;
  doc: BundleContent;
  /** Towers this process published this version to. */
  towers: Set<string>;
}

interface CachedEntry {
  profile: string;
  entry: Buffer;
}

type Inventory = Pick<PolicyModel, 'devices' | 'user_roles'>;

function sameInventory(a: Inventory | undefined, b: Inventory): boolean {
  return a !== undefined && a.devices === b.devices && a.user_roles === b.user_roles;
}

export class BundlePublisher {
  readonly #ctx: WorkerContext;
  readonly #key: Buffer;
  readonly #bundles = new Map<string, TenantBundle>();
  /** Part ref last published on each part topic by this process. */
  readonly #sentParts = new Map<string, string>();
  /** Per tenant, the directory entry of each device (an HMAC each: recomputed only on change). */
  readonly #entries = new Map<string, Map<string, CachedEntry>>();
  /** Per tenant, the part refs of the directory slice last published. */
  readonly #sliceSent = new Map<string, string>();
  readonly #legacyCleared = new Set<string>();
  /** Per tenant, the inventory its published directory slice was built from. */
  readonly #sliceInventory = new Map<string, Inventory>();
  /** Per tenant, its inventory's profiles (one hash per owner) and the inventory they came from. */
  readonly #profiles = new Map<string, { inventory: Inventory; profiles: InventoryProfiles }>();
  /** Per tenant, the end of its last queued publication (deleted once nothing is queued). */
  readonly #turns = new Map<string, Promise<void>>();

  constructor(ctx: WorkerContext, directoryKey: Buffer) {
    this.#ctx = ctx;
    this.#key = directoryKey;
  }

  /** Publishes the tenant's directory slice (if it changed) and its bundle to every tower serving it. */
  publishTenant(model: PolicyModel): Promise<void> {
    return this.#inTurn(model.tenant_id, () => this.#publishTenant(model));
  }

  async #publishTenant(model: PolicyModel): Promise<void> {
    const tenantId = model.tenant_id;
    // A model older than one published before it (its refresh was overtaken) has nothing to add.
    const current = this.#bundles.get(tenantId);
    if (current && current.version > model.version) return;
    await this.#clearLegacy(tenantId);
    await this.#publishDirectory(model);
    if (current && current.version === model.version) return;
    const bundle: TenantBundle = { version: model.version, doc: buildPolicyBundle(model, this.#profilesOf(model).owners), towers: new Set() };
    this.#bundles.set(tenantId, bundle);
    if (!(await this.#lease(`bundle.${tenantId}.${model.version}`))) return;
    for (const towerId of await this.#servingTowers(tenantId)) await this.#publishBundle(tenantId, towerId, bundle);
  }

  /** A tower's event of this tenant was stored: it serves the tenant, so it gets its bundle. */
  /** Whether `serve` has anything to do (checked per stored batch, so without a promise). */
  needsServing(tenantId: string, towerId: string): boolean {
    const bundle = this.#bundles.get(tenantId);
    return bundle !== undefined && !bundle.towers.has(towerId);
  }

  async serve(tenantId: string, towerId: string): Promise<void> {
    const marked = this.#bundles.get(tenantId);
    if (!marked || marked.towers.has(towerId)) return;
    // Marked first: the batches that follow while this publish is under way need nothing more.
    marked.towers.add(towerId);
    await this.#inTurn(tenantId, async () => {
      // In its turn, the version current then: a newer one published meanwhile may have reached the tower already.
      const bundle = this.#bundles.get(tenantId);
      if (!bundle || (bundle !== marked && bundle.towers.has(towerId))) return;
      bundle.towers.add(towerId);
      if (!(await this.#lease(`bundle.${tenantId}.${bundle.version}.${towerId}`))) return;
      await this.#publishBundle(tenantId, towerId, bundle);
    });
  }

  /** The tenant is gone: clears what this process published for it (retained empty payloads). */
  removeTenant(tenantId: string): Promise<void> {
    return this.#inTurn(tenantId, () => this.#removeTenant(tenantId));
  }

  async #removeTenant(tenantId: string): Promise<void> {
    const bundle = this.#bundles.get(tenantId);
    this.#bundles.delete(tenantId);
    this.#entries.delete(tenantId);
    this.#sliceSent.delete(tenantId);
    this.#sliceInventory.delete(tenantId);
    this.#profiles.delete(tenantId);
    const token = directoryToken(this.#key, tenantId);
    const prefixes = [topics.directory(token), ...[...(bundle?.towers ?? [])].map((t) => topics.policy(tenantId, t))];
    for (const prefix of prefixes) {
      for (const topic of [...this.#sentParts.keys()]) {
        if (!topic.startsWith(`${prefix}/`)) continue;
        this.#sentParts.delete(topic);
        await this.#ctx.downlink.publish(topic, Buffer.alloc(0), { retain: true });
      }
      await this.#ctx.downlink.publish(prefix, Buffer.alloc(0), { retain: true });
    }
  }

  async #publishBundle(tenantId: string, towerId: string, bundle: TenantBundle): Promise<void> {
    bundle.towers.add(towerId);
    const head: PolicyBundle = { ...bundle.doc.head, id: this.#ctx.newId(), tower_id: towerId, published_at: this.#ctx.now() };
    await this.#publishParts(bundle.doc.parts, bundle.doc.head.parts, (i) => topics.policyPart(tenantId, towerId, i));
    await this.#ctx.downlink.publish(topics.policy(tenantId, towerId), encodePayload(head), { retain: true });
    this.#ctx.counters.inc('policy_bundles_published_total');
  }

  #profilesOf(model: PolicyModel): InventoryProfiles {
    const held = this.#profiles.get(model.tenant_id);
    if (held && sameInventory(held.inventory, model)) return held.profiles;
    const profiles = inventoryProfiles(model);
    this.#profiles.set(model.tenant_id, { inventory: { devices: model.devices, user_roles: model.user_roles }, profiles });
    return profiles;
  }

  async #publishDirectory(model: PolicyModel): Promise<void> {
    const tenantId = model.tenant_id;
    if (sameInventory(this.#sliceInventory.get(tenantId), model)) return;
    const before = this.#entries.get(tenantId) ?? new Map<string, CachedEntry>();
    const after = new Map<string, CachedEntry>();
    for (const d of this.#profilesOf(model).devices) {
      const had = before.get(d.id);
      after.set(d.id, had && had.profile === d.profile ? had : { profile: d.profile, entry: directoryEntry(this.#key, tenantId, d.id, d.profile) });
    }
    this.#entries.set(tenantId, after);
    const slice = buildDirectorySlice(this.#key, tenantId, model.version, [...after.values()].map((e) => e.entry));
    const identity = slice.head.parts.join(',');
    if (this.#sliceSent.get(tenantId) !== identity) {
      if (!(await this.#lease(`directory.${tenantId}.${model.version}`))) return;
      const topic = topics.directory(slice.head.token);
      await this.#publishParts(slice.parts, slice.head.parts, (i) => topics.directoryPart(slice.head.token, i));
      await this.#ctx.downlink.publish(topic, encodePayload({ ...slice.head, id: this.#ctx.newId(), published_at: this.#ctx.now() }), { retain: true });
      this.#sliceSent.set(tenantId, identity);
      this.#ctx.counters.inc('directory_slices_published_total');
    }
    this.#sliceInventory.set(tenantId, { devices: model.devices, user_roles: model.user_roles });
  }

  /** Publishes the parts whose content changed (by ref), and clears parts beyond the new count. */
  async #publishParts(parts: readonly Buffer[], refs: readonly string[], partTopic: (i: number) => string): Promise<void> {
    for (let i = 0; i < parts.length; i++) {
      const topic = partTopic(i);
      if (this.#sentParts.get(topic) === refs[i]) continue;
      await this.#ctx.downlink.publish(topic, parts[i]!, { retain: true });
      this.#sentParts.set(topic, refs[i]!);
    }
    for (let i = parts.length; this.#sentParts.has(partTopic(i)); i++) {
      this.#sentParts.delete(partTopic(i));
      await this.#ctx.downlink.publish(partTopic(i), Buffer.alloc(0), { retain: true });
    }
  }

  /** Every tower where the tenant's devices were seen. */
  async #servingTowers(tenantId: string): Promise<string[]> {
    const out: string[] = [];
    let cursor: string | null = null;
    do {
      const page = await this.#ctx.store.towers.listSeenByTenant(tenantId, { limit: 1000, cursor });
      for (const t of page.items) out.push(t.id);
      cursor = page.next_cursor;
    } while (cursor);
    return out;
  }

  /** Releases before bundle schema 2 retained every tenant's bundle for every tower: cleared once. */
  async #clearLegacy(tenantId: string): Promise<void> {
    if (this.#legacyCleared.has(tenantId)) return;
    this.#legacyCleared.add(tenantId);
    await this.#ctx.downlink.publish(topics.legacyPolicy(tenantId), Buffer.alloc(0), { retain: true });
  }

  /** Runs `publish` after the tenant's publications queued before it have ended (either way). */
  #inTurn(tenantId: string, publish: () => Promise<void>): Promise<void> {
    const run = (this.#turns.get(tenantId) ?? Promise.resolve()).then(publish);
    const ended = run.then(
      () => undefined,
      () => undefined,
    );
    this.#turns.set(tenantId, ended);
    void ended.then(() => {
      if (this.#turns.get(tenantId) === ended) this.#turns.delete(tenantId);
    });
    return run;
  }

  #lease(name: string): Promise<boolean> {
    return this.#ctx.leases.acquire(name, this.#ctx.processId, this.#ctx.now(), BUNDLE_LEASE_MS);
  }
}
