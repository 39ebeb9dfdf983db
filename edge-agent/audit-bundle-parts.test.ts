/**
 * A malicious broker sending many bundle part numbers (or document keys) with no head: each part
 * was kept (three contents per part index, any number of indexes and documents), so the agent
 * grew without bound. Now parts no head names are capped per document and in all (count and
 * bytes), everything held is charged to one budget, and what does not fit is dropped and counted,
 * while a legitimate head and parts, in any order, still complete.
 */
import { describe, expect, it } from 'vitest';
import { parseTopic, topics } from '../shared/mqtt/topics.js';
import { buildDirectorySlice, buildPolicyBundle, directoryEntry, inventoryProfiles, partRef } from '../shared/policy/edge-bundle.js';
import { DEFAULT_PART_LIMITS, PART_OVERHEAD_BYTES, PartBudget, PartedDocs } from './parted-docs.js';
import { EdgePolicy, type BundleTopic } from './edge-policy.js';
import { TEST_DIRECTORY_KEY, testModel, type TestTenant } from './test-bundles.js';

interface Head {
  version: number;
  parts: string[];
}

const payload = (s: string): Buffer => Buffer.from(s);
const headOf = (version: number, ...parts: string[]): Head => ({ version, parts: parts.map((p) => partRef(payload(p))) });

describe('PartedDocs under a flood of parts', () => {
  it('100,000 distinct part numbers of one document with no head: at most maxUnnamedPerDoc held, out-of-range ones dropped; the real head and parts still complete', () => {
    const limits = { maxUnnamedPerDoc: 64, maxUnnamedParts: 1_000, maxUnnamedBytes: 1024 * 1024 };
    const budget = new PartBudget(4 * 1024 * 1024);
    const drops = new Map<string, number>();
    const completed: Array<[number, string[]]> = [];
    const d = new PartedDocs<Head, string>((_k, head, parts) => completed.push([head.version, parts]), {
      budget,
      limits,
      onDrop: (_k, _i, reason) => drops.set(reason, (drops.get(reason) ?? 0) + 1),
    });
    // One real part arrives first (retained messages come in any order)…
    d.part('doc', 0, payload('real-0'), 'real-0');
    let maxHeld = 0;
    let maxBytes = 0;
    for (let i = 0; i < 100_000; i++) {
      const s = `junk-${i}`;
      d.part('doc', i, payload(s), s);
      maxHeld = Math.max(maxHeld, d.heldParts);
      maxBytes = Math.max(maxBytes, budget.held);
    }
    expect(maxHeld).toBeLessThanOrEqual(limits.maxUnnamedPerDoc);
    expect(maxBytes).toBeLessThanOrEqual(limits.maxUnnamedPerDoc * (PART_OVERHEAD_BYTES + 16));
    expect(d.documents).toBe(1);
    // Part numbers past 65,535 (no head may name them) are dropped and counted.
    expect(drops.get('out_of_range')).toBe(100_000 - 65_536);
    expect(drops.get('unnamed_evicted')).toBeGreaterThan(60_000);
    expect(d.dropped).toBe([...drops.values()].reduce((a, b) => a + b, 0));
    // …and was evicted by the flood: the head waits for it, and it comes again.
    d.head('doc', headOf(1, 'real-0', 'real-1'), 100);
    expect(d.incomplete()).toBe(true);
    d.part('doc', 1, payload('real-1'), 'real-1');
    d.part('doc', 0, payload('real-0'), 'real-0');
    expect(completed).toEqual([[1, ['real-0', 'real-1']]]);
    // Once complete only what the head names is kept.
    expect(d.heldParts).toBe(2);
    expect(d.unnamedParts).toBe(0);
  });

  it('100,000 distinct document keys with a part each: at most maxUnnamedParts held, empty documents forgotten; parts named by a head are never evicted by the flood', () => {
    const limits = { maxUnnamedPerDoc: 64, maxUnnamedParts: 500, maxUnnamedBytes: 1024 * 1024 };
    const budget = new PartBudget(4 * 1024 * 1024);
    const completed: string[] = [];
    const d = new PartedDocs<Head, string>((k) => completed.push(k), { budget, limits });
    // A legitimate document whose head has come and misses one part.
    d.head('legit', headOf(1, 'a', 'b'));
    d.part('legit', 0, payload('a'), 'a');
    for (let i = 0; i < 100_000; i++) {
      d.part(`k${i}`, i % 65_536, payload(`x${i}`), 'x');
      expect(d.unnamedParts).toBeLessThanOrEqual(limits.maxUnnamedParts);
    }
    expect(d.documents).toBeLessThanOrEqual(limits.maxUnnamedParts + 1);
    expect(budget.held).toBeLessThanOrEqual(budget.max);
    d.part('legit', 1, payload('b'), 'b');
    expect(completed).toEqual(['legit']);
  });

  it('the shared byte budget: unnamed parts are evicted to make room for named ones; what still does not fit is dropped, never held', () => {
    const budget = new PartBudget(10 * (PART_OVERHEAD_BYTES + 100));
    const drops: string[] = [];
    const completed: number[] = [];
    const d = new PartedDocs<Head, string>((_k, h) => completed.push(h.version), { budget, onDrop: (_k, _i, r) => drops.push(r) });
    const big = (c: string): string => c.repeat(100);
    for (let i = 0; i < 50; i++) d.part(`junk${i}`, 0, payload(big(String.fromCharCode(65 + (i % 26)) + i)), 'j');
    expect(budget.held).toBeLessThanOrEqual(budget.max);
    d.head('doc', headOf(1, big('a'), big('b')));
    d.part('doc', 0, payload(big('a')), 'a');
    d.part('doc', 1, payload(big('b')), 'b');
    expect(completed).toEqual([1]);
    expect(budget.held).toBeLessThanOrEqual(budget.max);
    // Named parts fill the budget: a further document's head does not fit and is dropped.
    const many = Array.from({ length: 20 }, (_, i) => big(`n${i}`));
    d.head('full', headOf(1, ...many));
    for (const [i, s] of many.entries()) d.part('full', i, payload(s), s);
    expect(budget.held).toBeLessThanOrEqual(budget.max);
    expect(drops).toContain('over_budget');
    expect(completed).toEqual([1]);
  });
});

describe('PartedDocs at a full budget', () => {
  it('a head that needs room evicts parts no head names, never the parts it names itself', () => {
    const part = (c: string): string => c.repeat(100);
    const budget = new PartBudget(5 * (PART_OVERHEAD_BYTES + 100));
    const completed: string[] = [];
    const d = new PartedDocs<Head, string>((k) => completed.push(k), { budget });
    // The document's parts come first (the oldest unnamed), then unrelated ones fill the budget.
    d.part('doc', 0, payload(part('a')), 'a');
    d.part('doc', 1, payload(part('b')), 'b');
    for (const c of ['x', 'y', 'z']) d.part(`junk-${c}`, 0, payload(part(c)), c);
    expect(budget.held).toBe(budget.max);
    d.head('doc', headOf(1, part('a'), part('b')));
    expect(completed).toEqual(['doc']);
    expect(budget.held).toBeLessThanOrEqual(budget.max);
  });
});

describe('EdgePolicy with the default caps under a flood of directory parts', () => {
  const TOWER = 'T1';
  const tenant: TestTenant = { id: 'acme', version: 2, devices: [{ id: 'dev-1', roles: ['sales'] }], grants: [{ rule_id: 'R1', role_id: 'sales', app: 'dropbox', action: '*', effect: 'deny' }] };

  it('100,000 parts of distinct documents and part numbers, never a head: held parts stay within the caps and are counted as invalid; the real slice and bundle still apply', () => {
    let invalid = 0;
    const reasons = new Set<string>();
    const policy = new EdgePolicy({
      onBundle: () => {},
      onInvalid: (_t, e) => {
        invalid++;
        reasons.add(e);
      },
    });
    const feed = (topic: string, p: Buffer): void => policy.receive(topic, parseTopic(topic) as BundleTopic, p);
    const entries = Buffer.alloc(24, 1).toString('base64');
    let maxHeld = 0;
    for (let n = 0; n < 100_000; n++) {
      const i = (n * 7919) % 65_536;
      feed(topics.directoryPart(`tok${n % 5_000}`, i), Buffer.from(JSON.stringify({ v: 2, i, entries })));
      maxHeld = Math.max(maxHeld, policy.parts.held);
    }
    expect(maxHeld).toBeLessThanOrEqual(DEFAULT_PART_LIMITS.maxUnnamedParts);
    expect(policy.parts.unnamed).toBeLessThanOrEqual(DEFAULT_PART_LIMITS.maxUnnamedParts);
    expect(policy.parts.dropped).toBe(100_000 - DEFAULT_PART_LIMITS.maxUnnamedParts);
    expect(invalid).toBe(policy.parts.dropped);
    expect([...reasons]).toEqual(['part dropped: no head names it and too many such parts are held (oldest evicted)']);

    // The real tenant's slice and bundle, parts before heads.
    const model = testModel(tenant);
    const slice = buildDirectorySlice(TEST_DIRECTORY_KEY, tenant.id, model.version, inventoryProfiles(model).devices.map((d) => directoryEntry(TEST_DIRECTORY_KEY, tenant.id, d.id, d.profile)));
    const bundle = buildPolicyBundle(model);
    for (const [i, p] of slice.parts.entries()) feed(topics.directoryPart(slice.head.token, i), p);
    for (const [i, p] of bundle.parts.entries()) feed(topics.policyPart(tenant.id, TOWER, i), p);
    feed(topics.directory(slice.head.token), Buffer.from(JSON.stringify({ ...slice.head, id: '01J00000000000000000000000', published_at: 1 })));
    feed(topics.policy(tenant.id, TOWER), Buffer.from(JSON.stringify({ ...bundle.head, id: '01J00000000000000000000001', tower_id: TOWER, published_at: 1 })));
    const r = policy.resolve('dev-1');
    expect(r?.tenantId).toBe('acme');
    expect(policy.decide(r!, { id: '01J00000000000000000000009', device_id: 'dev-1', app: 'dropbox', action: 'upload' })).toMatchObject({ ok: true, decision: { effect: 'deny' }, version: 2 });
    expect(policy.assembling).toBe(false);
  });
});
