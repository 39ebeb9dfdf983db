import { describe, expect, it } from 'vitest';
import { parseTopic, topics } from '../shared/mqtt/topics.js';
import { buildDirectorySlice, buildPolicyBundle, deviceDigest, inventoryProfiles, directoryEntry, ENTRY_BYTES, partRef, TAG_BYTES } from '../shared/policy/edge-bundle.js';
import { EdgePolicy, type BundleInfo, type BundleTopic } from './edge-policy.js';
import { TEST_DIRECTORY_KEY, testModel, type TestTenant } from './test-bundles.js';

const TOWER = 'T1';
const ACME: TestTenant = {
  id: 'acme',
  version: 3,
  devices: [{ id: 'dev-sales', roles: ['sales'] }, { id: 'dev-eng', roles: ['eng', 'sales'] }, { id: 'dev-none' }],
  grants: [
    { rule_id: 'R1', role_id: 'sales', app: 'dropbox', action: '*', effect: 'deny' },
    { rule_id: 'R2', role_id: 'eng', app: 'dropbox', action: 'upload_file', effect: 'allow' },
  ],
};

/** The retained messages the cloud publishes for a tenant: [topic, payload]. */
function messages(t: TestTenant): Array<[string, Buffer]> {
  const model = testModel(t);
  const slice = buildDirectorySlice(TEST_DIRECTORY_KEY, t.id, model.version, inventoryProfiles(model).devices.map((d) => directoryEntry(TEST_DIRECTORY_KEY, t.id, d.id, d.profile)));
  const bundle = buildPolicyBundle(model);
  return [
    ...slice.parts.map((p, i): [string, Buffer] => [topics.directoryPart(slice.head.token, i), p]),
    [topics.directory(slice.head.token), Buffer.from(JSON.stringify({ ...slice.head, id: '01J00000000000000000000000', published_at: 1 }))],
    ...bundle.parts.map((p, i): [string, Buffer] => [topics.policyPart(t.id, TOWER, i), p]),
    [topics.policy(t.id, TOWER), Buffer.from(JSON.stringify({ ...bundle.head, id: '01J00000000000000000000001', tower_id: TOWER, published_at: 1 }))],
  ];
}

function holder() {
  const applied: Array<[string | null, BundleInfo]> = [];
  const invalid: string[] = [];
  const policy = new EdgePolicy({ onBundle: (t, i) => applied.push([t, i]), onInvalid: (_topic, e) => invalid.push(e) });
  const feed = (list: Array<[string, Buffer]>): void => {
    for (const [topic, payload] of list) policy.receive(topic, parseTopic(topic) as BundleTopic, payload);
  };
  return { policy, applied, invalid, feed };
}

const event = (device: string, app: string, action: string) => ({ id: '01J00000000000000000000009', device_id: device, app, action });

describe('EdgePolicy', () => {
  it('maps devices through the directory and decides with the bundle, whatever order the retained messages come in', () => {
    const { policy, applied, feed } = holder();
    feed(messages(ACME).reverse());
    expect(applied.map(([t, i]) => [t, i.kind, i.version])).toEqual([
      ['acme', 'policy', 3],
      [null, 'directory', 3],
    ]);
    const sales = policy.resolve('dev-sales')!;
    expect(sales.tenantId).toBe('acme');
    expect(policy.resolve('stranger')).toBeNull();
    expect(policy.decide(sales, event('dev-sales', 'dropbox', 'upload_file'))).toMatchObject({ ok: true, version: 3, decision: { effect: 'deny', reason: 'rule', rule_id: 'R1' } });
    // Deny beats allow across the owner's roles, exactly as in the cloud.
    expect(policy.decide(policy.resolve('dev-eng')!, event('dev-eng', 'dropbox', 'upload_file'))).toMatchObject({ ok: true, decision: { effect: 'deny', rule_id: 'R1' } });
    expect(policy.decide(policy.resolve('dev-none')!, event('dev-none', 'dropbox', 'upload_file'))).toMatchObject({ ok: true, decision: { effect: 'allow', reason: 'default' } });
  });

  it('applies a newer version, ignores an older one arriving late, and needs every part of a version', () => {
    const { policy, feed } = holder();
    feed(messages(ACME));
    const v4 = messages({ ...ACME, version: 4, grants: [{ rule_id: 'R9', role_id: 'sales', app: '*', action: '*', effect: 'deny' }] });
    // The head first: v3 stays in force until v4's parts are all there.
    const head = v4.find(([t]) => t === topics.policy('acme', TOWER))!;
    feed([head]);
    expect(policy.bundleVersion('acme')).toBe(3);
    feed(v4.filter(([t]) => t !== head[0]));
    expect(policy.bundleVersion('acme')).toBe(4);
    expect(policy.decide(policy.resolve('dev-sales')!, event('dev-sales', 'mail', 'send'))).toMatchObject({ ok: true, decision: { rule_id: 'R9' } });
    feed(messages(ACME));
    expect(policy.bundleVersion('acme')).toBe(4);
  });

  it("says what is missing: no bundle of the device's tenant here, or a profile the bundle lacks", () => {
    const { policy, feed } = holder();
    const directoryOnly = messages(ACME).filter(([t]) => t.startsWith('directory/'));
    feed(directoryOnly);
    const r = policy.resolve('dev-sales')!;
    expect(r.tenantId).toBe('acme');
    expect(policy.decide(r, event('dev-sales', 'mail', 'send'))).toEqual({ ok: false, missing: 'bundle' });
    expect(policy.decide({ ...r, profile: '000000000000' }, event('dev-sales', 'mail', 'send'))).toEqual({ ok: false, missing: 'bundle' });
    feed(messages(ACME).filter(([t]) => !t.startsWith('directory/')));
    expect(policy.decide({ ...r, profile: '000000000000' }, event('dev-sales', 'mail', 'send'))).toEqual({ ok: false, missing: 'profile' });
  });

  it('finds every device among slices of thousands, past tag collisions, also in a slice whose entries arrive unsorted', () => {
    const { policy, feed } = holder();
    const big: TestTenant = { id: 'globex', devices: Array.from({ length: 9000 }, (_, i) => ({ id: `g-${i}`, ...(i % 3 === 0 ? { roles: ['ops'] } : {}) })) };
    const bigMsgs = messages(big);
    expect(bigMsgs.filter(([t]) => parseTopic(t)?.kind === 'directoryPart').length).toBeGreaterThan(1);
    // ACME's slice arrives with its entries in reverse order, and with a forged entry that carries
    // dev-sales's tag but unseals nothing valid (a collision): both must not matter.
    const acme = messages(ACME);
    const partIndex = acme.findIndex(([t]) => parseTopic(t)?.kind === 'directoryPart');
    const part = JSON.parse(acme[partIndex]![1].toString()) as { v: number; i: number; entries: string };
    const entries = Buffer.from(part.entries, 'base64');
    const forged = Buffer.alloc(ENTRY_BYTES, 0xff);
    deviceDigest(TEST_DIRECTORY_KEY, 'dev-sales').copy(forged, 0, 0, TAG_BYTES);
    const list = [forged];
    for (let o = 0; o < entries.length; o += ENTRY_BYTES) list.push(entries.subarray(o, o + ENTRY_BYTES));
    const payload = Buffer.from(JSON.stringify({ ...part, entries: Buffer.concat(list.reverse()).toString('base64') }));
    acme[partIndex] = [acme[partIndex]![0], payload];
    const headIndex = acme.findIndex(([t]) => parseTopic(t)?.kind === 'directory');
    const head = JSON.parse(acme[headIndex]![1].toString()) as { parts: string[]; devices: number };
    acme[headIndex] = [acme[headIndex]![0], Buffer.from(JSON.stringify({ ...head, parts: [partRef(payload)], devices: head.devices + 1 }))];
    feed([...bigMsgs, ...acme]);
    expect(policy.directorySize).toBe(9000 + 4);
    const opsProfile = policy.resolve('g-0')!.profile;
    for (let i = 0; i < 9000; i++) expect(policy.resolve(`g-${i}`)).toEqual({ tenantId: 'globex', profile: i % 3 === 0 ? opsProfile : expect.not.stringMatching(opsProfile) });
    expect(policy.resolve('dev-sales')).toMatchObject({ tenantId: 'acme' });
    expect(policy.decide(policy.resolve('dev-sales')!, event('dev-sales', 'dropbox', 'upload_file'))).toMatchObject({ ok: true, decision: { effect: 'deny', rule_id: 'R1' } });
    expect(policy.resolve('g-9000')).toBeNull();
  });

  it('refuses old-style bundles and parts that do not match their topic; an empty payload clears', () => {
    const { policy, invalid, feed } = holder();
    const v1 = { v: 1, id: '01J00000000000000000000000', tenant_id: 'acme', version: 1, default_effect: 'allow', devices: [{ id: 'dev-sales', user_id: 'u1' }], user_roles: {}, grants: [], published_at: 1 };
    feed([[topics.policy('acme', TOWER), Buffer.from(JSON.stringify(v1))]]);
    expect(invalid.at(-1)).toMatch(/old-style bundle refused/);
    const msgs = messages(ACME);
    const head = msgs.find(([t]) => t === topics.policy('acme', TOWER))!;
    feed([[topics.policy('globex', TOWER), head[1]]]);
    expect(invalid.at(-1)).toMatch(/tenant_id/);
    feed(msgs);
    expect(policy.knownTenants()).toEqual(['acme']);
    feed([[head[0], Buffer.alloc(0)]]);
    expect(policy.knownTenants()).toEqual([]);
    const dirHead = msgs.find(([t]) => parseTopic(t)?.kind === 'directory')!;
    feed([[dirHead[0], Buffer.alloc(0)]]);
    expect(policy.resolve('dev-sales')).toBeNull();
  });
});
