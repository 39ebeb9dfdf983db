/**
 * What the tower decides from (shared/policy/edge-bundle.ts): the device directory (every tenant's
 * slice of keyed device hashes) and the policy bundles of the tenants this tower serves, fed by the
 * retained messages on `directory/#` and `tenants/+/towers/{id}/policy/#`.
 *
 * `resolve` maps a device id to its tenant and profile: one HMAC of the id with the directory key,
 * a binary search of its tag in each slice (a slice's entries are held as one buffer sorted by tag:
 * 24 bytes per device, no per-device objects), and unsealing the entry with the rest of the digest. `decide` runs the
 * workers' own evaluation (compilePolicyIndex, decisionOf) on the tenant's newest complete bundle.
 * An older version arriving late never replaces a newer one; version 1 bundles are refused.
 */
import { TOPIC_ID_RE } from '../shared/ids.js';
import {
  BUNDLE_SCHEMA_VERSION,
  decodePayload,
  DirectoryHeadSchema,
  DirectoryPartSchema,
  PolicyBundlePartSchema,
  PolicyBundleSchema,
  type Decision,
  type DirectoryHead,
  type PolicyBundle,
  type PolicyBundlePart,
  type UsageEvent,
} from '../shared/mqtt/payloads.js';
import type { ParsedTopic } from '../shared/mqtt/topics.js';
import { compilePolicyIndex, type PolicyIndex } from '../shared/policy/compile-policy-index.js';
import { deviceDigest, ENTRY_BYTES, BundleGrantCache, modelFromPolicyBundle, openTenant, TAG_BYTES, unsealEntry } from '../shared/policy/edge-bundle.js';
import { decisionOf } from '../shared/policy/evaluate-usage.js';
import { GenerationalCache } from '../shared/generational-cache.js';
import { DEFAULT_PART_BUDGET_BYTES, PartBudget, PartedDocs, type PartDropReason, type PartLimits } from './parted-docs.js';

export type BundleTopic = Extract<ParsedTopic, { kind: 'policy' | 'policyPart' | 'directory' | 'directoryPart' }>;

export interface Resolution {
  tenantId: string;
  /** The device owner's role set (a key of its tenant's bundle profiles). */
  profile: string;
}

export interface BundleInfo {
  kind: 'policy' | 'directory';
  version: number;
  /** Policy bundles: grants and profiles; directory slices: devices. */
  grants?: number;
  profiles?: number;
  devices?: number;
}

export type LocalVerdict =
  | { ok: true; decision: Decision; version: number }
  /** No bundle for the tenant at this tower yet, or the device's profile is not in it. */
  | { ok: false; missing: 'bundle' | 'profile' };

interface Slice {
  head: DirectoryHead;
  key: Buffer;
  /** ENTRY_BYTES per device, sorted by tag. */
  entries: Buffer;
  /** Opened once a device of the slice is seen. */
  tenantId: string | null;
}

interface TenantBundle {
  version: number;
  head: PolicyBundle;
  index: PolicyIndex;
}

export interface EdgePolicyOptions {
  onBundle: (tenantId: string | null, info: BundleInfo) => void;
  onInvalid: (topic: string, error: string) => void;
  /**
   * Bytes the policy and directory documents being assembled or kept may hold together (parts
   * and heads, parted-docs.ts), and the caps on parts no head names yet. Defaults:
   * DEFAULT_PART_BUDGET_BYTES, DEFAULT_PART_LIMITS.
   */
  partBudgetBytes?: number;
  partLimits?: Partial<PartLimits>;
  /** A part or head was dropped (also reported to onInvalid); `total` so far, for a log line. */
  onPartDropped?: (topic: string, reason: PartDropReason, total: number) => void;
}

const RESOLVE_CACHE = 65_536;

const DROP_REASONS: Record<PartDropReason, string> = {
  out_of_range: 'part number out of range',
  unnamed_evicted: 'no head names it and too many such parts are held (oldest evicted)',
  too_large: 'larger than the parts kept before their head may hold',
  over_budget: 'bundle documents hold their whole memory budget',
};

export class EdgePolicy {
  readonly #o: EdgePolicyOptions;
  readonly #slices = new Map<string, Slice>();
  #devices = 0;
  readonly #keys = new Map<string, Buffer>();
  readonly #bundles = new Map<string, TenantBundle>();
  readonly #resolved = new GenerationalCache<string, Resolution | null>(RESOLVE_CACHE);
  readonly #policyDocs: PartedDocs<PolicyBundle, PolicyBundlePart>;
  readonly #grantCache = new BundleGrantCache();
  readonly #directoryDocs: PartedDocs<DirectoryHead, Buffer>;
  readonly #partBudget: PartBudget;

  constructor(opts: EdgePolicyOptions) {
    this.#o = opts;
    // One budget for both kinds: a flood on one topic tree cannot hold twice the cap.
    const budget = new PartBudget(opts.partBudgetBytes ?? DEFAULT_PART_BUDGET_BYTES);
    let total = 0;
    const dropped = (topicOf: (key: string, index: number | null) => string) => (key: string, index: number | null, reason: PartDropReason) => {
      const topic = topicOf(key, index);
      this.#o.onInvalid(topic, `${index === null ? 'head' : 'part'} dropped: ${DROP_REASONS[reason]}`);
      this.#o.onPartDropped?.(topic, reason, ++total);
    };
    const limits = opts.partLimits ?? {};
    this.#policyDocs = new PartedDocs((_key, head, parts) => this.#applyBundle(head, parts), {
      budget,
      limits,
      onDrop: dropped((key, index) => `tenants/${key.replace('/', '/towers/')}/policy${index === null ? '' : `/${index}`}`),
    });
    this.#directoryDocs = new PartedDocs((_key, head, parts) => this.#applySlice(head, parts), {
      budget,
      limits,
      onDrop: dropped((key, index) => `directory/${key}${index === null ? '' : `/${index}`}`),
    });
    this.#partBudget = budget;
  }

  /** What the documents being assembled or kept hold: bytes charged, parts, parts no head names, drops. */
  get parts(): { bytes: number; held: number; unnamed: number; dropped: number } {
    const docs = [this.#policyDocs, this.#directoryDocs];
    return {
      bytes: this.#partBudget.held,
      held: docs.reduce((n, d) => n + d.heldParts, 0),
      unnamed: docs.reduce((n, d) => n + d.unnamedParts, 0),
      dropped: docs.reduce((n, d) => n + d.dropped, 0),
    };
  }

  /** Tenants whose policy bundle this tower holds. */
  knownTenants(): string[] {
    return [...this.#bundles.keys()];
  }

  bundleVersion(tenantId: string): number | undefined {
    return this.#bundles.get(tenantId)?.version;
  }

  /** A policy bundle or directory slice whose head has come is still missing parts. */
  get assembling(): boolean {
    return this.#policyDocs.incomplete() || this.#directoryDocs.incomplete();
  }

  /** Devices in the directory (every tenant's). */
  get directorySize(): number {
    return this.#devices;
  }

  /** A retained message on one of the bundle topics (an empty payload clears it). */
  receive(topic: string, parsed: BundleTopic, payload: Buffer): void {
    const key = parsed.kind === 'directory' || parsed.kind === 'directoryPart' ? parsed.token : `${parsed.tenantId}/${parsed.towerId}`;
    const docs = parsed.kind === 'directory' || parsed.kind === 'directoryPart' ? this.#directoryDocs : this.#policyDocs;
    const part = parsed.kind === 'policyPart' || parsed.kind === 'directoryPart' ? parsed.part : null;
    if (payload.length === 0) {
      docs.clear(key, part);
      if (parsed.kind === 'directory') this.#dropSlice(parsed.token);
      if (parsed.kind === 'policy' && this.#bundles.delete(parsed.tenantId)) this.#resolved.clear();
      return;
    }
    switch (parsed.kind) {
      case 'policy': {
        const r = decodePayload(PolicyBundleSchema, payload);
        if (!r.ok) return this.#o.onInvalid(topic, refusal(r.error));
        if (r.value.tenant_id !== parsed.tenantId) return this.#o.onInvalid(topic, 'tenant_id: does not match the topic');
        // Another tower's bundle, re-published here (a confused or compromised broker): not ours.
        if (r.value.tower_id !== parsed.towerId) return this.#o.onInvalid(topic, 'tower_id: does not match the topic');
        return this.#policyDocs.head(key, r.value, payload.length);
      }
      case 'policyPart': {
        const r = decodePayload(PolicyBundlePartSchema, payload);
        if (!r.ok || r.value.i !== parsed.part) return this.#o.onInvalid(topic, r.ok ? 'i: does not match the topic' : refusal(r.error));
        return this.#policyDocs.part(key, parsed.part, payload, r.value);
      }
      case 'directory': {
        const r = decodePayload(DirectoryHeadSchema, payload);
        if (!r.ok) return this.#o.onInvalid(topic, refusal(r.error));
        if (r.value.token !== parsed.token) return this.#o.onInvalid(topic, 'token: does not match the topic');
        return this.#directoryDocs.head(key, r.value, payload.length);
      }
      case 'directoryPart': {
        const r = decodePayload(DirectoryPartSchema, payload);
        if (!r.ok || r.value.i !== parsed.part) return this.#o.onInvalid(topic, r.ok ? 'i: does not match the topic' : refusal(r.error));
        const entries = Buffer.from(r.value.entries, 'base64');
        if (entries.length % ENTRY_BYTES !== 0) return this.#o.onInvalid(topic, `entries: not a whole number of ${ENTRY_BYTES}-byte entries`);
        return this.#directoryDocs.part(key, parsed.part, payload, entries);
      }
    }
  }

  /** The device's tenant and profile, from the directory; null when no slice lists it. */
  resolve(deviceId: string): Resolution | null {
    const cached = this.#resolved.get(deviceId);
    if (cached !== undefined) return cached;
    let found: Resolution | null = null;
    search: for (const [keyId, key] of this.#keys) {
      const digest = deviceDigest(key, deviceId);
      for (const slice of this.#slices.values()) {
        if (slice.head.key_id !== keyId) continue;
        for (let offset = firstWithTag(slice.entries, digest); offset < slice.entries.length && sameTag(slice.entries, offset, digest); offset += ENTRY_BYTES) {
          const { profile, sliceKey } = unsealEntry(digest, slice.entries.subarray(offset + TAG_BYTES, offset + ENTRY_BYTES));
          // Every entry of a slice unseals the same slice key; a tag collision unseals garbage.
          const tenantId = openTenant(sliceKey, Buffer.from(slice.head.tenant_sealed, 'base64'));
          if (!TOPIC_ID_RE.test(tenantId)) continue;
          slice.tenantId ??= tenantId;
          found = { tenantId, profile };
          break search;
        }
      }
    }
    this.#resolved.set(deviceId, found);
    return found;
  }

  /** Decides an event of a resolved device with the tenant's newest bundle (the workers' code). */
  decide(r: Resolution, event: Pick<UsageEvent, 'id' | 'device_id' | 'app' | 'action'>): LocalVerdict {
    const b = this.#bundles.get(r.tenantId);
    if (!b) return { ok: false, missing: 'bundle' };
    if (!Object.hasOwn(b.head.profiles, r.profile)) return { ok: false, missing: 'profile' };
    return { ok: true, decision: decisionOf(event, b.index.decide(r.profile, event.app, event.action)), version: b.version };
  }

  #applyBundle(head: PolicyBundle, parts: PolicyBundlePart[]): void {
    const current = this.#bundles.get(head.tenant_id);
    if (current && current.version > head.version) return;
    let index: PolicyIndex;
    try {
      index = compilePolicyIndex(modelFromPolicyBundle(head, parts, this.#grantCache));
    } catch (err) {
      return this.#o.onInvalid(`bundle of ${head.tenant_id}`, (err as Error).message);
    }
    this.#bundles.set(head.tenant_id, { version: head.version, head, index });
    this.#o.onBundle(head.tenant_id, { kind: 'policy', version: head.version, grants: head.grants, profiles: Object.keys(head.profiles).length });
  }

  #applySlice(head: DirectoryHead, parts: Buffer[]): void {
    const current = this.#slices.get(head.token);
    if (current && current.head.version > head.version) return;
    this.#dropSlice(head.token);
    const key = Buffer.from(head.key, 'base64');
    this.#keys.set(head.key_id, key);
    const slice: Slice = { head, key, entries: sortedEntries(Buffer.concat(parts)), tenantId: null };
    this.#slices.set(head.token, slice);
    this.#devices += slice.entries.length / ENTRY_BYTES;
    this.#resolved.clear();
    this.#o.onBundle(null, { kind: 'directory', version: head.version, devices: head.devices });
  }

  #dropSlice(token: string): void {
    const old = this.#slices.get(token);
    if (!old) return;
    this.#slices.delete(token);
    this.#devices -= old.entries.length / ENTRY_BYTES;
    this.#resolved.clear();
  }
}

/** Compares the tag of the entry at `offset` with the tag of `digest`. */
function compareTag(entries: Buffer, offset: number, digest: Buffer): number {
  return entries.compare(digest, 0, TAG_BYTES, offset, offset + TAG_BYTES);
}

function sameTag(entries: Buffer, offset: number, digest: Buffer): boolean {
  return compareTag(entries, offset, digest) === 0;
}

/** Offset of the first entry whose tag is not below the digest's (binary search; entries sorted). */
function firstWithTag(entries: Buffer, digest: Buffer): number {
  let lo = 0;
  let hi = entries.length / ENTRY_BYTES;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareTag(entries, mid * ENTRY_BYTES, digest) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo * ENTRY_BYTES;
}

/**
 * The slice's entries sorted by tag. The cloud sends each part sorted and the parts in tag order
 * (edge-bundle.ts buildDirectorySlice), so this is one pass; anything else is sorted here.
 */
function sortedEntries(entries: Buffer): Buffer {
  let sorted = true;
  for (let offset = ENTRY_BYTES; sorted && offset < entries.length; offset += ENTRY_BYTES) {
    sorted = entries.compare(entries, offset - ENTRY_BYTES, offset, offset, offset + ENTRY_BYTES) <= 0;
  }
  if (sorted) return entries;
  const list: Buffer[] = [];
  for (let offset = 0; offset < entries.length; offset += ENTRY_BYTES) list.push(entries.subarray(offset, offset + ENTRY_BYTES));
  return Buffer.concat(list.sort(Buffer.compare));
}

/** Names the refusal of an old-style bundle (schema version 1: whole inventories, user ids). */
function refusal(error: string): string {
  return error.startsWith('v:') ? `old-style bundle refused (bundle schema ${BUNDLE_SCHEMA_VERSION} required): ${error}` : error;
}
