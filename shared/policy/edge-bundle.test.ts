import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createPrng } from '../../simulator/prng.js';
import { decodePayload, DirectoryHeadSchema, DirectoryPartSchema, PolicyBundlePartSchema, PolicyBundleSchema, type BundleGrant, type DirectoryHead, type Effect, type PolicyBundle } from '../mqtt/payloads.js';
import { compilePolicyIndex } from './compile-policy-index.js';
import {
  BundleGrantCache,
  buildDirectorySlice,
  buildPolicyBundle,
  deviceDigest,
  inventoryProfiles,
  directoryEntry,
  ENTRY_BYTES,
  GRANTS_PER_PART,
  modelFromPolicyBundle,
  openTenant,
  partOfTag,
  partRef,
  TAG_BYTES,
  unsealEntry,
} from './edge-bundle.js';
import { decisionOf, evaluateUsage } from './evaluate-usage.js';
import type { PolicyModel } from './model.js';

const TENANT = '01JTENANT0000000000000000A';
const APPS = ['slack', 'zoom', 'dropbox', 'mail', '*'];
const ACTIONS = ['send', 'upload_file', 'download', 'call', '*'];

/** A random tenant: roles, users holding random role sets, devices (some without owner), grants. */
function randomModel(seed: number, devices: number, rules: number): PolicyModel {
  const prng = createPrng(seed);
  const roles = Array.from({ length: 8 }, (_, i) => `role-${i}`);
  const users = Array.from({ length: Math.max(1, devices / 2) }, (_, i) => `user-${i}`);
  const userRoles = new Map<string, string[]>();
  for (const u of users) userRoles.set(u, roles.filter(() => prng.next() < 0.3));
  const grants: BundleGrant[] = [];
  for (let i = 0; i < rules; i++) {
    grants.push({
      rule_id: `R${String(i).padStart(5, '0')}`,
      policy_id: `P${i % 7}`,
      role_id: prng.pick(roles),
      app: prng.pick(APPS),
      action: prng.pick(ACTIONS),
      effect: prng.next() < 0.4 ? 'deny' : 'allow',
      // Severity is the policy's.
      severity: (['low', 'medium', 'high', 'critical'] as const)[(i % 7) % 4]!,
    });
  }
  return {
    tenant_id: TENANT,
    version: 3,
    default_effect: (seed % 2 === 0 ? 'allow' : 'deny') as Effect,
    devices: Array.from({ length: devices }, (_, i) => ({ id: `dev-${seed}-${i}`, user_id: prng.next() < 0.1 ? null : prng.pick(users) })),
    user_roles: userRoles,
    grants,
  };
}

/** What a tower does with the published payloads: parse them as it receives them. */
function receivePolicy(model: PolicyModel) {
  const built = buildPolicyBundle(model);
  const head = decodePayload(PolicyBundleSchema, JSON.stringify({ ...built.head, id: '01J00000000000000000000000', tower_id: 'T1', published_at: 1 }));
  if (!head.ok) throw new Error(head.error);
  const parts = built.parts.map((p, i) => {
    expect(partRef(p)).toBe(head.value.parts[i]);
    const r = decodePayload(PolicyBundlePartSchema, p);
    if (!r.ok) throw new Error(r.error);
    return r.value;
  });
  return { head: head.value, parts, raw: Buffer.concat([Buffer.from(JSON.stringify(built.head)), ...built.parts]) };
}

function receiveDirectory(key: Buffer, model: PolicyModel) {
  const entries = inventoryProfiles(model).devices.map((d) => directoryEntry(key, model.tenant_id, d.id, d.profile));
  const built = buildDirectorySlice(key, model.tenant_id, model.version, entries);
  const head = decodePayload(DirectoryHeadSchema, JSON.stringify({ ...built.head, id: '01J00000000000000000000000', published_at: 1 }));
  if (!head.ok) throw new Error(head.error);
  const byTag = new Map<string, Buffer>();
  built.parts.forEach((p, i) => {
    expect(partRef(p)).toBe(head.value.parts[i]);
    const r = decodePayload(DirectoryPartSchema, p);
    if (!r.ok) throw new Error(r.error);
    const bytes = Buffer.from(r.value.entries, 'base64');
    for (let o = 0; o < bytes.length; o += ENTRY_BYTES) {
      const tag = bytes.subarray(o, o + TAG_BYTES);
      expect(partOfTag(tag, head.value.part_bits)).toBe(i);
      byTag.set(tag.toString('hex'), bytes.subarray(o + TAG_BYTES, o + ENTRY_BYTES));
    }
  });
  return { head: head.value, byTag, raw: Buffer.concat([Buffer.from(JSON.stringify(built.head)), ...built.parts]) };
}

function lookup(key: Buffer, dir: { head: DirectoryHead; byTag: Map<string, Buffer> }, deviceId: string) {
  const d = deviceDigest(key, deviceId);
  const sealed = dir.byTag.get(d.subarray(0, TAG_BYTES).toString('hex'));
  if (!sealed) return null;
  const { profile, sliceKey } = unsealEntry(d, sealed);
  return { profile, tenant: openTenant(sliceKey, Buffer.from(dir.head.tenant_sealed, 'base64')) };
}

describe('edge bundles', () => {
  it.each([1, 2, 3, 4])('decide at the edge exactly as the workers do (random tenant, seed %i)', (seed) => {
    const key = randomBytes(32);
    const model = randomModel(seed, 300, 3 * GRANTS_PER_PART + 17);
    const cloud = compilePolicyIndex(model);
    const policy = receivePolicy(model);
    expect(policy.parts.length).toBe(4);
    const edge = compilePolicyIndex(modelFromPolicyBundle(policy.head, policy.parts));
    const dir = receiveDirectory(key, model);
    for (const d of model.devices) {
      const found = lookup(key, dir, d.id);
      expect(found?.tenant).toBe(TENANT);
      for (const app of APPS.slice(0, 4)) {
        for (const action of ACTIONS.slice(0, 4)) {
          const event = { id: '01J00000000000000000000000', ts: 1, device_id: d.id, app, action };
          const atCloud = evaluateUsage(cloud, event, () => TENANT);
          expect(atCloud.kind).toBe('decided');
          const atEdge = decisionOf(event, edge.decide(found!.profile, app, action));
          expect(atEdge).toEqual(atCloud.kind === 'decided' ? atCloud.decision : null);
        }
      }
    }
  });

  it('holds no device id, user id or role name in the clear; the directory reveals nothing without a device id', () => {
    const key = randomBytes(32);
    const model = randomModel(7, 50, 40);
    const policy = receivePolicy(model);
    const dir = receiveDirectory(key, model);
    for (const raw of [policy.raw.toString(), dir.raw.toString()]) {
      for (const d of model.devices) expect(raw).not.toContain(d.id);
      for (const u of model.user_roles.keys()) expect(raw).not.toContain(u);
    }
    expect(dir.raw.toString()).not.toContain(TENANT);
    expect(dir.head.devices).toBe(50);
    // A device of another tenant, or an invented id, is not found.
    expect(lookup(key, dir, 'dev-elsewhere')).toBeNull();
    // Another key cannot even find the tags.
    expect(lookup(randomBytes(32), dir, model.devices[0]!.id)).toBeNull();
  });

  it('splits a large slice by tag so that one device changes one part', () => {
    const key = randomBytes(32);
    const model = randomModel(9, 20_000, 10);
    const before = receiveDirectory(key, model);
    expect(before.head.part_bits).toBe(3);
    const changed: PolicyModel = { ...model, devices: [...model.devices, { id: 'dev-new', user_id: null }] };
    const after = receiveDirectory(key, changed);
    const differ = after.head.parts.filter((ref, i) => ref !== before.head.parts[i]);
    expect(differ).toHaveLength(1);
    expect(lookup(key, after, 'dev-new')?.tenant).toBe(TENANT);
  });

  it('refuses a bundle whose parts do not hold what its head says', () => {
    const model = randomModel(5, 10, 20);
    const policy = receivePolicy(model);
    const head: PolicyBundle = { ...policy.head, grants: policy.head.grants + 1 };
    expect(() => modelFromPolicyBundle(head, policy.parts)).toThrow(/21 grants|grants/);
    const bad = { ...policy.parts[0]!, grants: [['R1', 99, 0, 'a', 'b', 'deny'] as [string, number, number, string, string, Effect]] };
    expect(() => modelFromPolicyBundle({ ...policy.head, grants: 1 }, [bad])).toThrow(/names a policy or role/);
  });

  it('a grant cache converts only the parts that changed, and nothing when the policy or role tables moved', () => {
    const model = randomModel(11, 10, 3 * GRANTS_PER_PART);
    const v1 = receivePolicy(model);
    expect(v1.parts).toHaveLength(3);
    const cache = new BundleGrantCache();
    const first = modelFromPolicyBundle(v1.head, v1.parts, cache);
    expect(first).toEqual(modelFromPolicyBundle(v1.head, v1.parts));

    // One rule changes: a tower keeps the two other decoded parts, and gets one new one.
    const changed = model.grants.map((g, i) => (i === 0 ? { ...g, effect: (g.effect === 'deny' ? 'allow' : 'deny') as Effect } : g));
    const v2 = receivePolicy({ ...model, version: model.version + 1, grants: changed });
    const held = v2.head.parts.map((ref, i) => (ref === v1.head.parts[i] ? v1.parts[i]! : v2.parts[i]!));
    expect(held.filter((p, i) => p === v1.parts[i])).toHaveLength(2);
    const second = modelFromPolicyBundle(v2.head, held, cache);
    expect(second).toEqual(modelFromPolicyBundle(v2.head, held));
    // The grants of the unchanged parts are the very objects converted for v1.
    const firstIds = new Set(first.grants);
    expect(second.grants.filter((g) => firstIds.has(g))).toHaveLength(2 * GRANTS_PER_PART);

    // A head whose policy and role tables read otherwise (a policy or role added before others
    // moves their indexes): the same part objects mean other grants, so they are converted again.
    const moved: PolicyBundle = { ...v1.head, version: v1.head.version + 2, policies: [...v1.head.policies].reverse(), roles: [...v1.head.roles].reverse() };
    const third = modelFromPolicyBundle(moved, v1.parts, cache);
    expect(third).toEqual(modelFromPolicyBundle(moved, v1.parts));
    expect(third.grants).not.toEqual(first.grants);
  });

  it('refuses old-style (version 1) bundles', () => {
    const v1 = { v: 1, id: '01J00000000000000000000000', tenant_id: 'acme', version: 1, default_effect: 'allow', devices: [{ id: 'd1', user_id: 'u1' }], user_roles: {}, grants: [], published_at: 1 };
    expect(decodePayload(PolicyBundleSchema, JSON.stringify(v1)).ok).toBe(false);
  });
});
