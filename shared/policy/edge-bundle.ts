/**
 * What a tower holds to decide on its own, and nothing more (issue #11, least privilege):
 *
 * - a **policy bundle** per tenant it serves (towers where the tenant's devices were seen), with
 *   the tenant's rules flattened onto roles and its *profiles* — the distinct role sets of device
 *   owners, named by a hash of the role ids. No device ids, user ids or names.
 * - the **device directory**, one slice per tenant, sent to every tower so that a device seen at
 *   a tower for the first time is still mapped to its tenant (even a tenant the tower has never
 *   served, even offline). A slice lists keyed hashes of device ids: entry = tag ‖ sealed, where
 *   d = HMAC-SHA256(K, device id), tag = d[0..8] and sealed = (profile ‖ slice key) XOR d[8..24].
 *   A tower computes d for a device it sees and looks the tag up; it cannot list the ids behind
 *   the tags, and without a device id it cannot unseal an entry, so it learns neither a tenant's
 *   ids nor its profiles. The tenant id itself is sealed with the slice key (64 bytes, padded),
 *   and the slice's topic is an opaque token, so slices of tenants whose devices a tower never
 *   sees stay anonymous blobs of a certain size. K is the same for every tower (it must compute
 *   d): a tower can test ids it guesses, which is what seeing a device already tells it.
 *
 * Documents larger than one MQTT message are a head plus parts (payloads.ts); a directory slice is
 * split by the top bits of the tag, so one device's change re-sends one part; a bundle's grants are
 * split in rule-id order. The same builders run in the cloud (workers/bundle-publisher.ts) and in
 * the bench, the same readers at the edge (edge-agent/edge-policy.ts).
 */
import { createHash, createHmac } from 'node:crypto';
import type { BundleGrant, DirectoryHead, Effect, GrantTuple, PolicyBundle, PolicyBundlePart, Severity } from '../mqtt/payloads.js';
import { BUNDLE_SCHEMA_VERSION } from '../mqtt/payloads.js';
import type { PolicyModel } from './model.js';

export const DIRECTORY_KEY_ID = 'k1';
export const TAG_BYTES = 8;
const PROFILE_BYTES = 6;
const SLICE_KEY_BYTES = 10;
const SEALED_BYTES = PROFILE_BYTES + SLICE_KEY_BYTES;
export const ENTRY_BYTES = TAG_BYTES + SEALED_BYTES;
const SEALED_TENANT_BYTES = 64;
/** Directory entries per part, on average: 4,000 × 24 bytes ≈ 128 KiB of base64. */
const ENTRIES_PER_PART = 4000;
/**
 * Grants per bundle part (~100 bytes each as JSON). A rule change re-sends the part holding the
 * rule, which every serving tower parses and validates: 500 rather than 1,500 took bench (k)'s
 * large tenant from every-tower p50/p99 812–890 / 1,181–1,256 ms to 517 / 800 ms, at 20 parts per
 * 10,000 grants instead of 7 (the same bytes).
 */
export const GRANTS_PER_PART = 500;

/** The directory key every tower gets, derived from the deployment's service secret. */
export function deriveDirectoryKey(serviceSecret: string): Buffer {
  return createHmac('sha256', serviceSecret).update('edgeplane/device-directory/v1').digest();
}

/** d = HMAC-SHA256(K, device id): its first bytes are the tag, the next ones unseal the entry. */
export function deviceDigest(key: Buffer, deviceId: string): Buffer {
  return createHmac('sha256', key).update(deviceId).digest();
}

/** A profile: the set of policy roles a device's owner holds, named by 12 hex digits. */
export function profileRef(roleIds: Iterable<string>): string {
  const sorted = [...new Set(roleIds)].sort();
  return createHash('sha256').update(sorted.join('\n')).digest('hex').slice(0, PROFILE_BYTES * 2);
}

/** The opaque topic token of a tenant's directory slice. */
export function directoryToken(key: Buffer, tenantId: string): string {
  return createHmac('sha256', key).update(`token\u0000${tenantId}`).digest('base64url').slice(0, 16);
}

function sliceKey(key: Buffer, tenantId: string): Buffer {
  return createHmac('sha256', key).update(`slice\u0000${tenantId}`).digest().subarray(0, SLICE_KEY_BYTES);
}

function tenantPad(k: Buffer): Buffer {
  return createHmac('sha512', k).update('tenant').digest();
}

export function sealTenant(k: Buffer, tenantId: string): Buffer {
  const plain = Buffer.alloc(SEALED_TENANT_BYTES);
  if (plain.write(tenantId, 'utf8') !== Buffer.byteLength(tenantId)) throw new Error('tenant id longer than 64 bytes');
  const pad = tenantPad(k);
  for (let i = 0; i < SEALED_TENANT_BYTES; i++) plain[i]! ^= pad[i]!;
  return plain;
}

/** The tenant id sealed in a slice head, with the slice key a device's entry revealed. */
export function openTenant(k: Buffer, sealed: Buffer): string {
  const pad = tenantPad(k);
  const plain = Buffer.alloc(SEALED_TENANT_BYTES);
  for (let i = 0; i < SEALED_TENANT_BYTES; i++) plain[i] = sealed[i]! ^ pad[i]!;
  const end = plain.indexOf(0);
  return plain.toString('utf8', 0, end === -1 ? SEALED_TENANT_BYTES : end);
}

/** One 24-byte directory entry (tag ‖ sealed profile and slice key). */
export function directoryEntry(key: Buffer, tenantId: string, deviceId: string, profile: string): Buffer {
  const d = deviceDigest(key, deviceId);
  const entry = Buffer.alloc(ENTRY_BYTES);
  d.copy(entry, 0, 0, TAG_BYTES);
  Buffer.from(profile, 'hex').copy(entry, TAG_BYTES);
  sliceKey(key, tenantId).copy(entry, TAG_BYTES + PROFILE_BYTES);
  for (let i = 0; i < SEALED_BYTES; i++) entry[TAG_BYTES + i]! ^= d[TAG_BYTES + i]!;
  return entry;
}

/** What a device's digest unseals from its entry's sealed bytes. */
export function unsealEntry(digest: Buffer, sealed: Buffer): { profile: string; sliceKey: Buffer } {
  const plain = Buffer.alloc(SEALED_BYTES);
  for (let i = 0; i < SEALED_BYTES; i++) plain[i] = sealed[i]! ^ digest[TAG_BYTES + i]!;
  return { profile: plain.toString('hex', 0, PROFILE_BYTES), sliceKey: plain.subarray(PROFILE_BYTES) };
}

/** The part a tag falls in, for a slice split into 2^bits parts. */
export function partOfTag(tag: Buffer, bits: number): number {
  return bits === 0 ? 0 : tag.readUInt16BE(0) >>> (16 - bits);
}

/** Content reference of a part: SHA-256 of its payload, 16 hex digits. */
export function partRef(payload: Buffer): string {
  return createHash('sha256').update(payload).digest('hex').slice(0, 16);
}

export interface PartedDocument<H> {
  /** The head without the fields that differ per publication (id, published_at, tower). */
  head: H;
  /** Part payloads, exactly as published (their refs are in the head). */
  parts: Buffer[];
}

/** A tenant's directory slice. `entries` come from directoryEntry(); order does not matter. */
export function buildDirectorySlice(
  key: Buffer,
  tenantId: string,
  version: number,
  entries: readonly Buffer[],
): PartedDocument<Omit<DirectoryHead, 'id' | 'published_at'>> {
  const bits = Math.min(16, Math.max(0, Math.ceil(Math.log2(Math.max(1, entries.length / ENTRIES_PER_PART)))));
  const buckets: Buffer[][] = Array.from({ length: 2 ** bits }, () => []);
  for (const e of entries) buckets[partOfTag(e, bits)]!.push(e);
  const parts = buckets.map((b, i) => {
    b.sort(Buffer.compare);
    const part = { v: BUNDLE_SCHEMA_VERSION, i, entries: Buffer.concat(b).toString('base64') };
    return Buffer.from(JSON.stringify(part));
  });
  return {
    head: {
      v: BUNDLE_SCHEMA_VERSION,
      token: directoryToken(key, tenantId),
      version,
      key_id: DIRECTORY_KEY_ID,
      key: key.toString('base64'),
      tenant_sealed: sealTenant(sliceKey(key, tenantId), tenantId).toString('base64'),
      devices: entries.length,
      part_bits: bits,
      parts: parts.map(partRef),
    },
    parts,
  };
}

export interface InventoryProfiles {
  /** Each device with its profile (its owner's role set; no owner: no roles). */
  devices: Array<{ id: string; profile: string }>;
  /** Profile ref → the role ids it stands for, sorted (the empty profile always present). */
  owners: Map<string, string[]>;
}

/**
 * The profiles of a tenant's inventory, one hash per owner: what the directory slice (devices)
 * and the policy bundle (owners) carry. Depends on the inventory alone (devices, user roles), so
 * a publisher may keep it across rule-side changes.
 */
export function inventoryProfiles(model: Pick<PolicyModel, 'devices' | 'user_roles'>): InventoryProfiles {
  const none = profileRef([]);
  const owners = new Map<string, string[]>([[none, []]]);
  const ofUser = new Map<string, string>();
  const devices = model.devices.map((d) => {
    if (d.user_id === null) return { id: d.id, profile: none };
    let ref = ofUser.get(d.user_id);
    if (ref === undefined) {
      const roles = model.user_roles.get(d.user_id) ?? [];
      ofUser.set(d.user_id, (ref = profileRef(roles)));
      if (!owners.has(ref)) owners.set(ref, [...new Set(roles)].sort());
    }
    return { id: d.id, profile: ref };
  });
  return { devices, owners };
}

/** A tenant's policy bundle content, the same for every tower it serves. */
export function buildPolicyBundle(
  model: PolicyModel,
  owners: ReadonlyMap<string, readonly string[]> = inventoryProfiles(model).owners,
): PartedDocument<Omit<PolicyBundle, 'id' | 'tower_id' | 'published_at'>> {
  const policyIndex = new Map<string, number>();
  const policies: Array<[string, Severity]> = [];
  const roleIndex = new Map<string, number>();
  const roles: string[] = [];
  const roleOf = (id: string): number => {
    let i = roleIndex.get(id);
    if (i === undefined) {
      roleIndex.set(id, (i = roles.length));
      roles.push(id);
    }
    return i;
  };
  const sorted = [...model.grants].sort((a, b) => cmp(a.rule_id, b.rule_id) || cmp(a.role_id, b.role_id));
  const tuples: GrantTuple[] = sorted.map((g) => {
    let p = policyIndex.get(g.policy_id);
    if (p === undefined) {
      policyIndex.set(g.policy_id, (p = policies.length));
      policies.push([g.policy_id, g.severity]);
    }
    return [g.rule_id, p, roleOf(g.role_id), g.app, g.action, g.effect];
  });
  const profiles: Record<string, number[]> = {};
  for (const [ref, roleIds] of owners) profiles[ref] = roleIds.map(roleOf);
  const parts: Buffer[] = [];
  for (let i = 0; i * GRANTS_PER_PART < tuples.length; i++) {
    const part: PolicyBundlePart = { v: BUNDLE_SCHEMA_VERSION, i, grants: tuples.slice(i * GRANTS_PER_PART, (i + 1) * GRANTS_PER_PART) };
    parts.push(Buffer.from(JSON.stringify(part)));
  }
  return {
    head: {
      v: BUNDLE_SCHEMA_VERSION,
      tenant_id: model.tenant_id,
      version: model.version,
      default_effect: model.default_effect,
      policies,
      roles,
      profiles,
      grants: tuples.length,
      parts: parts.map(partRef),
    },
    parts,
  };
}

/**
 * A tower's converted grants of the bundle parts it holds, reused for the next version while the
 * part is the same (PartedDocs keeps a part that did not change) and the head's policy and role
 * tables read the same: a rule change converts the one part that holds the rule, not all 10,000
 * grants. With 100 towers' agents in one bench process, converting every grant again took 30 %
 * of that process during the changes of bench (k), allocation under a large heap.
 */
export class BundleGrantCache {
  readonly #byPart = new WeakMap<PolicyBundlePart, { tables: string; grants: BundleGrant[] }>();

  get(part: PolicyBundlePart, tables: string): BundleGrant[] | undefined {
    const hit = this.#byPart.get(part);
    return hit && hit.tables === tables ? hit.grants : undefined;
  }

  set(part: PolicyBundlePart, tables: string, grants: BundleGrant[]): void {
    this.#byPart.set(part, { tables, grants });
  }
}

function partGrants(head: PolicyBundle, part: PolicyBundlePart): BundleGrant[] {
  const { policies, roles } = head;
  const tuples = part.grants;
  const grants = new Array<BundleGrant>(tuples.length);
  for (let k = 0; k < tuples.length; k++) {
    const g = tuples[k]!;
    const policy = policies[g[1]];
    const role = roles[g[2]];
    if (policy === undefined || role === undefined) throw new Error(`bundle part ${part.i}: grant ${g[0]} names a policy or role the head does not list`);
    grants[k] = { rule_id: g[0], policy_id: policy[0], role_id: role, app: g[3], action: g[4], effect: g[5] as Effect, severity: policy[1] };
  }
  return grants;
}

/**
 * The edge's PolicyModel of a complete bundle: profiles stand in for users (a device's profile is
 * its owner's role set), so compilePolicyIndex and `decide(profile, …)` are the workers' own code.
 * With `cache`, parts converted for an earlier version are not converted again.
 */
export function modelFromPolicyBundle(head: PolicyBundle, parts: readonly PolicyBundlePart[], cache?: BundleGrantCache): PolicyModel {
  let total = 0;
  for (const part of parts) total += part.grants.length;
  if (total !== head.grants) throw new Error(`bundle holds ${total} grants, its head says ${head.grants}`);
  const tables = cache ? JSON.stringify([head.policies, head.roles]) : '';
  const grants = new Array<BundleGrant>(total);
  let n = 0;
  for (const part of parts) {
    let converted = cache?.get(part, tables);
    if (!converted) {
      converted = partGrants(head, part);
      cache?.set(part, tables, converted);
    }
    for (let k = 0; k < converted.length; k++) grants[n++] = converted[k]!;
  }
  const userRoles = new Map<string, string[]>();
  for (const [ref, roleIdx] of Object.entries(head.profiles)) userRoles.set(ref, roleIdx.map((i) => head.roles[i] ?? ''));
  return { tenant_id: head.tenant_id, version: head.version, default_effect: head.default_effect, devices: [], user_roles: userRoles, grants };
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
