import { describe, expect, it } from 'vitest';
import type { Alert, DiscoveredDevice } from '../../domain.js';
import { isEdgeplaneError } from '../../errors.js';
import type { DecidedUsage, RecordUsageInput } from '../port.js';
import { alertKey } from './alerts.js';
import { foldDiscovered, foldSighting, reportSightings } from './discovery.js';
import { batchLookups, batchResult, foldBatch, partitionFresh, PresenceThrottle, storedDecisionOf, ThrottledWrites, TowerSightingThrottle, validateBatch } from './usage-batch.js';
import { NO_WORKFLOW } from './alerts.js';

const NOW = 1_000_000;
let seq = 0;
const ids = (): string => `id-${String(++seq).padStart(4, '0')}`;

const event = (overrides: Partial<DecidedUsage> = {}): DecidedUsage => ({
  id: ids(),
  tenant_id: 't1',
  tower_id: 'tw-1',
  batch_id: 'b',
  device_id: 'd1',
  user_id: 'u1',
  app: 'slack',
  action: 'upload',
  bytes: 1,
  ts: 100,
  received_at: 100,
  effect: 'allow',
  reason: 'default',
  rule_id: null,
  policy_id: null,
  policy_version: 1,
  severity: null,
  ...overrides,
});
const deny = (overrides: Partial<DecidedUsage> = {}): DecidedUsage =>
  event({ effect: 'deny', reason: 'rule', rule_id: 'r1', policy_id: 'p1', severity: 'high', ...overrides });
const unknown = (overrides: Partial<DecidedUsage> = {}): DecidedUsage =>
  event({ device_id: 'stranger', user_id: null, reason: 'unknown_device', ...overrides });
const batch = (records: DecidedUsage[], windowS = 300): RecordUsageInput => ({
  tenant_id: 't1',
  tower_id: 'tw-1',
  batch_id: 'b',
  now: NOW,
  alert_window_s: windowS,
  records,
});
const none = { openAlerts: new Map<string, Alert>(), discovered: new Map<string, DiscoveredDevice>() };

describe('usage batch rules', () => {
  it('validates tenant and rule references, naming the record', () => {
    expect(() => validateBatch(batch([event(), deny()]))).not.toThrow();
    const fail = (records: DecidedUsage[]): string => {
      try {
        validateBatch(batch(records));
      } catch (err) {
        return isEdgeplaneError(err) && err.code === 'VALIDATION_FAILED' ? (err.issues?.[0]?.field ?? '') : 'other';
      }
      return 'passed';
    };
    expect(fail([event(), event({ tenant_id: 't2' })])).toBe('records.1.tenant_id');
    expect(fail([deny({ rule_id: null })])).toBe('records.0.rule_id');
    expect(fail([deny({ policy_id: null })])).toBe('records.0.policy_id');
  });

  it('partitions fresh records from duplicates, in input order, repeats included', () => {
    const a = event();
    const b = deny();
    const stored = new Map([[b.id, { ...storedDecisionOf(b), policy_version: 7 }]]);
    const { fresh, storedDecisions } = partitionFresh([a, b, { ...a, effect: 'deny' }], stored);
    expect(fresh).toEqual([a]);
    expect(storedDecisions).toEqual([{ ...storedDecisionOf(b), policy_version: 7 }, storedDecisionOf(a)]);
  });

  it('opens one alert per device and rule and folds the rest of the batch into it', () => {
    const records = [deny(), deny({ tower_id: 'tw-2' }), deny({ device_id: 'd2' }), deny({ rule_id: 'r2' }), event()];
    const lookups = batchLookups(batch(records), records);
    expect(lookups).toEqual({
      windowStart: NOW - 300_000,
      alerts: [
        { device_id: 'd1', rule_id: 'r1' },
        { device_id: 'd2', rule_id: 'r1' },
        { device_id: 'd1', rule_id: 'r2' },
      ],
      discoveredDevices: [],
    });
    const fold = foldBatch(batch(records), records, none, ids);
    expect(fold.alertsUpdated).toEqual([]);
    expect(fold.alertsOpened.map((a) => [a.device_id, a.rule_id, a.count, a.tower_id, a.first_seen, a.last_seen])).toEqual([
      ['d1', 'r1', 2, 'tw-2', NOW, NOW],
      ['d2', 'r1', 1, 'tw-1', NOW, NOW],
      ['d1', 'r2', 1, 'tw-1', NOW, NOW],
    ]);
    expect(fold.counts).toEqual({ allow: 1, deny: 4 });
  });

  it('bumps an open alert the adapter found, and defaults severity to medium', () => {
    const open: Alert = {
      id: 'a0',
      tenant_id: 't1',
      device_id: 'd1',
      user_id: 'u1',
      rule_id: 'r1',
      policy_id: 'p1',
      app: 'slack',
      action: 'upload',
      tower_id: 'tw-0',
      severity: 'high',
      count: 4,
      first_seen: 5,
      last_seen: 6,
      status: 'open',
      ...NO_WORKFLOW,
    };
    const records = [deny({ tower_id: 'tw-9' }), deny({ rule_id: 'r2', severity: null })];
    const fold = foldBatch(batch(records), records, { ...none, openAlerts: new Map([[alertKey('d1', 'r1'), open]]) }, ids);
    expect(fold.alertsUpdated).toEqual([{ ...open, count: 5, last_seen: NOW, tower_id: 'tw-9' }]);
    expect(fold.alertsOpened.map((a) => a.severity)).toEqual(['medium']);
  });

  it('alerts only on rule denies', () => {
    const records = [event({ effect: 'deny', reason: 'default' }), event({ reason: 'rule', rule_id: 'r1', policy_id: 'p1' }), event({ effect: 'deny', reason: 'blocked' })];
    expect(batchLookups(batch(records), records).alerts).toEqual([]);
    expect(foldBatch(batch(records), records, none, ids).alertsOpened).toEqual([]);
  });

  it('folds unknown devices and tower sightings: earliest first_seen, latest last_seen and its tower', () => {
    const records = [unknown({ ts: 10, tower_id: 'tw-1' }), unknown({ ts: 5, tower_id: 'tw-2' }), event({ ts: 50, tower_id: 'tw-2' })];
    expect(batchLookups(batch(records), records).discoveredDevices).toEqual(['stranger']);
    const fold = foldBatch(batch(records), records, none, ids);
    expect(fold.discovered).toEqual([
      { isNew: true, row: expect.objectContaining({ tenant_id: 't1', device_id: 'stranger', first_seen: 5, last_seen: 10, count: 2, tower_id: 'tw-1' }) },
    ]);
    expect([...fold.towers]).toEqual([
      ['tw-1', { first_seen: 10, last_seen: 10 }],
      ['tw-2', { first_seen: 5, last_seen: 50 }],
    ]);
    const stored: DiscoveredDevice = { id: 'x', tenant_id: 't1', device_id: 'stranger', tower_id: 'tw-0', first_seen: 1, last_seen: 1, count: 9 };
    const again = foldBatch(batch(records), records, { ...none, discovered: new Map([['stranger', stored]]) }, ids);
    expect(again.discovered).toEqual([{ isNew: false, row: { ...stored, last_seen: 10, count: 11, tower_id: 'tw-1' } }]);
    expect(batchResult(batch(records), 3, [], again)).toMatchObject({ inserted: 3, duplicates: 0, discovered: [again.discovered[0]!.row] });
  });

  it('folds platform reports per device; a tie on last_seen goes to the newer report', () => {
    const row: DiscoveredDevice = { id: 'x', tenant_id: null, device_id: 'x', tower_id: 'tw-1', first_seen: 10, last_seen: 20, count: 1 };
    expect(foldSighting(row, { tower_id: 'tw-2', first_seen: 15, last_seen: 20, count: 2 })).toEqual({ ...row, tower_id: 'tw-2', count: 3 });
    expect(foldSighting(row, { tower_id: 'tw-2', first_seen: 1, last_seen: 19, count: 1 })).toEqual({ ...row, first_seen: 1, count: 2 });
    const sightings = reportSightings('tw-3', [
      { device_id: 'x', first_seen: 5, last_seen: 30, count: 2 },
      { device_id: 'y', first_seen: 7, last_seen: 7, count: 1 },
    ]);
    const folded = foldDiscovered(null, sightings, new Map([['x', row]]), ids);
    expect(folded.map((t) => [t.isNew, t.row.device_id, t.row.first_seen, t.row.last_seen, t.row.count, t.row.tower_id, t.row.tenant_id])).toEqual([
      [false, 'x', 5, 30, 3, 'tw-3', null],
      [true, 'y', 7, 7, 1, 'tw-3', null],
    ]);
  });
});

describe('throttled writes', () => {
  const sight = (first_seen: number, last_seen: number) => new Map([['tw-1', { first_seen, last_seen }]]);

  it('writes a tower sighting the first time, when an earlier event comes, and every refresh interval', () => {
    const t = new TowerSightingThrottle(10_000);
    const writes = new ThrottledWrites();
    const step = (tenant: string, first: number, last: number): number => {
      const due = t.due(tenant, sight(first, last));
      writes.add(t, tenant, due);
      writes.confirm();
      return due.length;
    };
    expect(step('t1', 1_000, 2_000)).toBe(1);
    expect(step('t1', 1_500, 11_999)).toBe(0); // within the interval, nothing earlier
    expect(step('t1', 900, 3_000)).toBe(1); // an earlier first sighting
    expect(step('t1', 5_000, 13_000)).toBe(1); // 10 s past the last written
    expect(step('t2', 5_000, 13_000)).toBe(1); // per tenant
  });

  it('counts only what a committed transaction wrote', () => {
    const t = new TowerSightingThrottle(10_000);
    const writes = new ThrottledWrites();
    writes.add(t, 't1', t.due('t1', sight(1_000, 2_000)));
    writes.reset(); // rolled back or retried
    expect(t.due('t1', sight(1_000, 2_000))).toHaveLength(1);
  });

  it('writes presence on a tower change at once and otherwise once per interval, within its bound', () => {
    const p = new PresenceThrottle(10_000, 2);
    const at = (tower: string, received_at: number) => new Map([['d1', { tower_id: tower, received_at }]]);
    p.written('t1', p.due('t1', at('tw-1', 0)));
    expect(p.due('t1', at('tw-1', 9_999))).toHaveLength(0);
    expect(p.due('t1', at('tw-2', 1))).toHaveLength(1);
    expect(p.due('t1', at('tw-1', 10_000))).toHaveLength(1);
    // Two more devices push d1 out of the bounded memory: it is written again.
    p.written('t1', [['d2', { tower_id: 'tw-1', received_at: 0 }], ['d3', { tower_id: 'tw-1', received_at: 0 }]]);
    expect(p.due('t1', at('tw-1', 1))).toHaveLength(1);
  });
});
