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
 * directory slice, the owners' profiles — is not computed again.
 *
 * One process of the cluster publishes (the `bundles.publisher` lease, renewed every third of it):
 * every version of every tenant, to every tower, so what it remembers having sent on a topic is
 * what the broker holds, and a tenant's versions go out in order. Its publications take turns per
 * tenant: a refresh that starts while an older one still waits on the broker goes after it. (Run
 * side by side — two refreshes in one process, or two processes each taking a version — the older
 * writes could land last and the broker retained a stale directory or bundle, which every tower
 * connecting later received; and a process skipped a part whose content came back to what it had
 * sent itself, though another process had sent a different one in between.) The other processes
 * build their models for their own decisions and, when a tower's first event of a tenant is
 * stored there, ask the publisher over the bus to serve it (`bundle.serve`). A process that takes
 * the lease over forgets what it had sent and republishes every tenant whole.
 *
 * Parts beyond a document's current count are cleared (an empty retained payload) when this
 * process published them. Parts an earlier run or another process retained are found through the
 * downlink's view of the broker's retained store (`retainedUnder`: the embedded broker's LevelDB
 * store, or the broker nodes' Redis index for a worker) at the first publication of each document
 * after this process became the publisher. Without that view they would stay retained until a
 * later version has that many parts again (towers ignore parts their head does not name).
 */
import { encodePayload } from '../shared/mqtt/payloads.js';
import { edgeDocumentOf, topics } from '../shared/mqtt/topics.js';
import { buildDirectorySlice, buildPolicyBundle, directoryEntry, directoryToken, inventoryProfiles, type InventoryProfiles, type PartedDocument } from '../shared/policy/edge-bundle.js';
import type { PolicyModel } from '../shared/policy/model.js';
import type { PolicyBundle } from '../shared/mqtt/payloads.js';
import type { WorkerContext } from './context.js';

/** The lease naming the cluster's one bundle publisher. */
const PUBLISHER_LEASE = 'bundles.publisher';
/** How long a claim of it lasts by default (`--bundle-publisher-lease-ms`); renewed every third of it. */
export const DEFAULT_PUBLISHER_LEASE_MS = 15_000;

type BundleContent = PartedDocument<Omit<PolicyBundle, 'id' | 'tower_id' | 'published_at'>>;

interface TenantBundle {
  version: number;
  /** Null in a process that does not publish (it needs the version and towers only). */
  doc: BundleContent | null;
  /** Towers this process published this version to (or, not publishing, asked the publisher to). */
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
  /** Documents (head topics) whose retained parts were looked up since this process became the publisher. */
  readonly #swept = new Set<string>();
  /** Whether the documents of tenants that are gone were cleared since this process became the publisher. */
  #orphansSwept = false;
  /** The sweep under way, which a renewal meanwhile joins instead of starting another. */
  #orphanSweep: Promise<void> | null = null;
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
  /** Until when (ctx clock) this process holds the publisher lease; 0: it does not. */
  #publisherUntil = 0;
  readonly #leaseMs: number;
  /** How often the engine renews the lease (a third of it). */
  readonly renewMs: number;

  constructor(ctx: WorkerContext, directoryKey: Buffer, leaseMs = DEFAULT_PUBLISHER_LEASE_MS) {
    this.#ctx = ctx;
    this.#key = directoryKey;
    this.#leaseMs = leaseMs;
    this.renewMs = Math.floor(leaseMs / 3);
    ctx.counters.gauge('bundle_publisher', () => (this.publishing ? 1 : 0));
  }

  /**
   * Whether this process is the cluster's bundle publisher now. It stops a third of the lease
   * before the lease's end, by itself, when it has not renewed (two renewals missed): a process
   * paused past its lease must not publish beside the one that took over.
   */
  get publishing(): boolean {
    return this.#ctx.now() < this.#publisherUntil - this.renewMs;
  }

  /**
   * Claims or renews the publisher lease. Resolves true when this process has just become the
   * publisher (it had not held the lease, or let it lapse): what it remembered sending is forgotten,
   * and the caller republishes every tenant.
   */
  async claim(): Promise<boolean> {
    const now = this.#ctx.now();
    // Renewed before the lease ran out: nobody else can have held it meanwhile.
    const continuing = now < this.#publisherUntil;
    if (!(await this.#ctx.leases.acquire(PUBLISHER_LEASE, this.#ctx.processId, now, this.#leaseMs))) {
      this.#publisherUntil = 0;
      return false;
    }
    this.#publisherUntil = now + this.#leaseMs;
    if (continuing) return false;
    // Another process may have published since this one last did: nothing remembered holds.
    this.#bundles.clear();
    this.#sentParts.clear();
    this.#swept.clear();
    this.#orphansSwept = false;
    this.#sliceSent.clear();
    this.#sliceInventory.clear();
    this.#ctx.logger.info({ event: 'bundle_publisher', process_id: this.#ctx.processId }, 'this process publishes the edge bundles');
    return true;
  }

  /** Gives the publisher lease back (stop): another process takes over at its next renewal. */
  async resign(): Promise<void> {
    if (this.#publisherUntil === 0) return;
    this.#publisherUntil = 0;
    await this.#ctx.leases.release(PUBLISHER_LEASE, this.#ctx.processId);
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
    if (!this.publishing) {
      if (!current || current.version < model.version) this.#bundles.set(tenantId, { version: model.version, doc: null, towers: new Set() });
      return;
    }
    await this.#clearLegacy(tenantId);
    await this.#publishDirectory(model);
    let bundle = current;
    if (!bundle || bundle.version < model.version || !bundle.doc) {
      bundle = { version: model.version, doc: buildPolicyBundle(model, this.#profilesOf(model).owners), towers: new Set() };
      this.#bundles.set(tenantId, bundle);
    }
    // Every serving tower this version has not reached: all of them for a new version, and for the
    // same one those whose request to be served was lost on the way (the bus may drop messages).
    for (const towerId of await this.#servingTowers(tenantId)) {
      if (!bundle.towers.has(towerId)) await this.#publishBundle(tenantId, towerId, bundle);
    }
  }

  /** Whether `serve` has anything to do (checked per stored batch, so without a promise). */
  needsServing(tenantId: string, towerId: string): boolean {
    const bundle = this.#bundles.get(tenantId);
    return bundle !== undefined && !bundle.towers.has(towerId);
  }

  /** A tower's event of this tenant was stored: it serves the tenant, so it gets its bundle. */
  async serve(tenantId: string, towerId: string): Promise<void> {
    const marked = this.#bundles.get(tenantId);
    if (!marked || marked.towers.has(towerId)) return;
    // Marked first: the batches that follow while this publish is under way need nothing more.
    marked.towers.add(towerId);
    if (!this.publishing) {
      this.#ctx.bus.publish('bundle.serve', { tenant_id: tenantId, tower_id: towerId });
      return;
    }
    await this.#inTurn(tenantId, async () => {
      // In its turn, the version current then: a newer one published meanwhile may have reached the tower already.
      const bundle = this.#bundles.get(tenantId);
      if (!bundle || !this.publishing || (bundle !== marked && bundle.towers.has(towerId))) return;
      await this.#publishBundle(tenantId, towerId, bundle);
    });
  }

  /** Another process stored a tower's first event of the tenant (`bundle.serve`): the publisher serves it. */
  async serveRequested(tenantId: string, towerId: string): Promise<void> {
    if (this.publishing) await this.serve(tenantId, towerId);
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
    if (!this.publishing) return;
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

  /**
   * Clears what the broker retains for tenants that no longer exist — their bundles at every
   * tower, legacy bundles and directory slices, parts before heads — once after this process
   * became the publisher. A tenant deleted while this process publishes is cleared by
   * `removeTenant`; this clears what was left by one deleted while no process published, or
   * across a crash between its deletion and those clears. `liveTenants` is read after the
   * broker's listing: a tenant whose document was listed existed before it, so it is in the set
   * unless it was deleted meanwhile (tenant ids are never reused). Without the broker's view
   * (`retainedEdgeDocuments`) nothing is done; a failed listing is logged and tried again at the
   * next call (the engine calls at every lease renewal).
   */
  sweepOrphans(liveTenants: () => Promise<ReadonlySet<string>>): Promise<void> {
    this.#orphanSweep ??= this.#sweepOrphans(liveTenants).finally(() => (this.#orphanSweep = null));
    return this.#orphanSweep;
  }

  async #sweepOrphans(liveTenants: () => Promise<ReadonlySet<string>>): Promise<void> {
    const list = this.#ctx.downlink.retainedEdgeDocuments;
    if (!list || this.#orphansSwept || !this.publishing) return;
    let orphans: string[];
    try {
      const retained = await list.call(this.#ctx.downlink);
      const live = await liveTenants();
      const liveTokens = new Set([...live].map((t) => directoryToken(this.#key, t)));
      const parts: string[] = [];
      const heads: string[] = [];
      for (const topic of retained) {
        const doc = edgeDocumentOf(topic);
        if (!doc || ('tenantId' in doc ? live.has(doc.tenantId) : liveTokens.has(doc.token))) continue;
        (doc.kind === 'policyPart' || doc.kind === 'directoryPart' ? parts : heads).push(topic);
      }
      // Parts before heads, as a tenant's documents are removed.
      orphans = [...parts, ...heads];
    } catch (err) {
      this.#ctx.logger.warn({ err, event: 'bundle_orphans_lookup_failed' }, 'could not list the retained edge documents; those of deleted tenants stay retained until the next try');
      return;
    }
    for (const topic of orphans) {
      if (!this.publishing) return;
      await this.#ctx.downlink.publish(topic, Buffer.alloc(0), { retain: true });
      this.#sentParts.delete(topic);
      this.#ctx.counters.inc('bundle_orphans_cleared_total');
    }
    this.#orphansSwept = true;
    if (orphans.length > 0) this.#ctx.logger.info({ event: 'bundle_orphans_cleared', topics: orphans.length }, 'cleared the retained edge documents of deleted tenants');
  }

  async #publishBundle(tenantId: string, towerId: string, bundle: TenantBundle): Promise<void> {
    const doc = bundle.doc;
    if (!doc) return;
    bundle.towers.add(towerId);
    const head: PolicyBundle = { ...doc.head, id: this.#ctx.newId(), tower_id: towerId, published_at: this.#ctx.now() };
    await this.#publishParts(topics.policy(tenantId, towerId), doc.parts, doc.head.parts, (i) => topics.policyPart(tenantId, towerId, i));
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
      const topic = topics.directory(slice.head.token);
      await this.#publishParts(topic, slice.parts, slice.head.parts, (i) => topics.directoryPart(slice.head.token, i));
      await this.#ctx.downlink.publish(topic, encodePayload({ ...slice.head, id: this.#ctx.newId(), published_at: this.#ctx.now() }), { retain: true });
      this.#sliceSent.set(tenantId, identity);
      this.#ctx.counters.inc('directory_slices_published_total');
    }
    this.#sliceInventory.set(tenantId, { devices: model.devices, user_roles: model.user_roles });
  }

  /**
   * Publishes the parts whose content changed (by ref), and clears parts beyond the new count:
   * those this process sent, and, at the document's first publication since this process became
   * the publisher, those the broker retains from before (`#staleParts`).
   */
  async #publishParts(head: string, parts: readonly Buffer[], refs: readonly string[], partTopic: (i: number) => string): Promise<void> {
    for (const topic of await this.#staleParts(head, parts.length, partTopic)) {
      await this.#ctx.downlink.publish(topic, Buffer.alloc(0), { retain: true });
      this.#ctx.counters.inc('bundle_stale_parts_cleared_total');
    }
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

  /**
   * Part topics of `head` the broker retains at index `count` or beyond that this process did not
   * send (it clears its own below): looked up once per document after a claim. A failed lookup is
   * logged and tried again at the document's next publication.
   */
  async #staleParts(head: string, count: number, partTopic: (i: number) => string): Promise<string[]> {
    const lookup = this.#ctx.downlink.retainedUnder;
    if (!lookup || this.#swept.has(head)) return [];
    let retained: string[];
    try {
      retained = await lookup.call(this.#ctx.downlink, head);
    } catch (err) {
      this.#ctx.logger.warn({ err, event: 'bundle_parts_lookup_failed', topic: head }, 'could not read the retained parts of a document; parts beyond its count may stay retained');
      return [];
    }
    this.#swept.add(head);
    const current = new Set(Array.from({ length: count }, (_, i) => partTopic(i)));
    return retained.filter((t) => !current.has(t) && !this.#sentParts.has(t) && t.startsWith(`${head}/`));
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
}
