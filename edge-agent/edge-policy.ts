/**
 * What the tower decides from (shared/policy/edge-bundle.ts): the device directory (every tenant's
 * slice of keyed device hashes) and the policy bundles of the tenants this tower serves, fed by the
 * retained messages on `directory/#` and `tenants/+/towers/{id}/policy/#`.
 *
 * `resolve` maps a device id to its tenant and profile: one HMAC of the id with the directory key,
 * a lookup of its tag, and unsealing the entry with the rest of the digest. `decide` runs the
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
import { deviceDigest, ENTRY_BYTES, modelFromPolicyBundle, openTenant, TAG_BYTES, unsealEntry } from '../shared/policy/edge-bundle.js';
import { decisionOf } from '../shared/policy/evaluate-usage.js';
import { LruMap } from './lru.js';
import { PartedDocs } from './parted-docs.js';

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
}

const RESOLVE_CACHE = 65_536;

export class EdgePolicy {
  readonly #o: EdgePolicyOptions;
  readonly #slices = new Map<string, Slice>();
  /** `${key id}:${tag hex}` → the slice holding the entry, and its offset. */
  readonly #tags = new Map<string, { slice: Slice; offset: number }>();
  readonly #keys = new Map<string, Buffer>();
  readonly #bundles = new Map<string, TenantBundle>();
  readonly #resolved = new LruMap<string, Resolution | null>(RESOLVE_CACHE);
  readonly #policyDocs: PartedDocs<PolicyBundle, PolicyBundlePart>;
  readonly #directoryDocs: PartedDocs<DirectoryHead, Buffer>;

  constructor(opts: EdgePolicyOptions) {
    this.#o = opts;
    this.#policyDocs = new PartedDocs((_key, head, parts) => this.#applyBundle(head, parts));
    this.#directoryDocs = new PartedDocs((_key, head, parts) => this.#applySlice(head, parts));
  }

  /** Tenants whose policy bundle this tower holds. */
  knownTenants(): string[] {
    return [...this.#bundles.keys()];
  }

  bundleVersion(tenantId: string): number | undefined {
    return this.#bundles.get(tenantId)?.version;
  }

  /** Devices in the directory (every tenant's). */
  get directorySize(): number {
    return this.#tags.size;
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
        return this.#policyDocs.head(key, r.value);
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
        return this.#directoryDocs.head(key, r.value);
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
    for (const [keyId, key] of this.#keys) {
      const digest = deviceDigest(key, deviceId);
      const hit = this.#tags.get(`${keyId}:${digest.toString('hex', 0, TAG_BYTES)}`);
      if (!hit) continue;
      const { profile, sliceKey } = unsealEntry(digest, hit.slice.entries.subarray(hit.offset + TAG_BYTES, hit.offset + ENTRY_BYTES));
      // Every entry of a slice unseals the same slice key; a tag collision unseals garbage.
      const tenantId = openTenant(sliceKey, Buffer.from(hit.slice.head.tenant_sealed, 'base64'));
      if (!TOPIC_ID_RE.test(tenantId)) continue;
      hit.slice.tenantId ??= tenantId;
      found = { tenantId, profile };
      break;
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
      index = compilePolicyIndex(modelFromPolicyBundle(head, parts));
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
    const slice: Slice = { head, key, entries: Buffer.concat(parts), tenantId: null };
    this.#slices.set(head.token, slice);
    for (let offset = 0; offset < slice.entries.length; offset += ENTRY_BYTES) {
      this.#tags.set(`${head.key_id}:${slice.entries.toString('hex', offset, offset + TAG_BYTES)}`, { slice, offset });
    }
    this.#resolved.clear();
    this.#o.onBundle(null, { kind: 'directory', version: head.version, devices: head.devices });
  }

  #dropSlice(token: string): void {
    const old = this.#slices.get(token);
    if (!old) return;
    this.#slices.delete(token);
    for (let offset = 0; offset < old.entries.length; offset += ENTRY_BYTES) {
      const tag: string = `${old.head.key_id}:${old.entries.toString('hex', offset, offset + TAG_BYTES)}`;
      if (this.#tags.get(tag)?.slice === old) this.#tags.delete(tag);
    }
    this.#resolved.clear();
  }
}

/** Names the refusal of an old-style bundle (schema version 1: whole inventories, user ids). */
function refusal(error: string): string {
  return error.startsWith('v:') ? `old-style bundle refused (bundle schema ${BUNDLE_SCHEMA_VERSION} required): ${error}` : error;
}
