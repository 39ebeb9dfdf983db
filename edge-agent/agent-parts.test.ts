import { describe, expect, it } from 'vitest';
import { createIdFactory } from '../shared/ids.js';
import { SCHEMA_VERSION, type Command } from '../shared/mqtt/payloads.js';
import { backoffDelay } from './backoff.js';
import { CommandHandler } from './command-handler.js';
import { RecordingEnforcer } from './enforcer.js';
import { LruMap } from './lru.js';
import { checkObservation } from './observation.js';
import { OfflineBuffer, type OutboundBatch } from './offline-buffer.js';

const newId = createIdFactory();

function usage(n: number): OutboundBatch {
  const events = Array.from({ length: n }, () => ({ id: newId(), ts: 1, device_id: 'd', app: 'a', action: 'b' }));
  return { kind: 'usage', tenantId: 't', batch: { v: SCHEMA_VERSION, id: newId(), sent_at: 1, events } };
}

function command(expiresAt: number): Command {
  return { v: SCHEMA_VERSION, id: newId(), type: 'block_device', device_id: 'd1', issued_at: 1, expires_at: expiresAt };
}

describe('backoffDelay', () => {
  it('grows exponentially, stays within [min, max] whatever the jitter', () => {
    for (const r of [0, 0.5, 0.999]) {
      for (let attempt = 0; attempt < 40; attempt++) {
        const d = backoffDelay(attempt, 250, 10_000, () => r);
        expect(d).toBeGreaterThanOrEqual(250);
        expect(d).toBeLessThanOrEqual(10_000);
      }
    }
    expect(backoffDelay(0, 250, 10_000, () => 1)).toBe(250);
    expect(backoffDelay(3, 250, 10_000, () => 1)).toBe(2000);
    expect(backoffDelay(3, 250, 10_000, () => 0)).toBe(1000);
    expect(backoffDelay(20, 250, 10_000, () => 1)).toBe(10_000);
  });
});

describe('OfflineBuffer', () => {
  it('drops the oldest batches when full and keeps order', () => {
    const buf = new OfflineBuffer(10);
    const batches = [usage(4), usage(4), usage(4)];
    expect(buf.push(batches[0]!)).toEqual([]);
    expect(buf.push(batches[1]!)).toEqual([]);
    expect(buf.push(batches[2]!)).toEqual([batches[0]]);
    expect(buf.events).toBe(8);
    expect(buf.drain()).toEqual([batches[1], batches[2]]);
    expect(buf.events).toBe(0);
  });

  it('refuses a batch larger than the whole buffer', () => {
    const buf = new OfflineBuffer(3);
    const big = usage(4);
    expect(buf.push(big)).toEqual([big]);
    expect(buf.length).toBe(0);
  });

  it('shifts many single-event batches in order', () => {
    const buf = new OfflineBuffer(5000);
    const all = Array.from({ length: 5000 }, () => usage(1));
    for (const b of all) buf.push(b);
    const out: OutboundBatch[] = [];
    for (let b = buf.shift(); b; b = buf.shift()) out.push(b);
    expect(out).toEqual(all);
  });
});

describe('LruMap', () => {
  it('evicts the least recently used key', () => {
    const m = new LruMap<string, number>(2);
    m.set('a', 1);
    m.set('b', 2);
    m.get('a');
    m.set('c', 3);
    expect(m.get('b')).toBeUndefined();
    expect(m.get('a')).toBe(1);
    expect(m.size).toBe(2);
  });
});

describe('CommandHandler', () => {
  it('applies once per id, even when the redelivery races the first copy', async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => (release = r));
    const enforcer = new RecordingEnforcer(async () => {
      await gate;
      return { status: 'applied' };
    });
    const h = new CommandHandler({ enforcer, now: () => 10, newId, cacheSize: 8 });
    const cmd = command(100);
    const first = h.handle('acme', cmd);
    const second = h.handle('acme', cmd);
    release();
    const [a, b] = await Promise.all([first, second]);
    expect(enforcer.commands).toHaveLength(1);
    expect(a.duplicate).toBe(false);
    expect(b.duplicate).toBe(true);
    expect(b.ack).toEqual(a.ack);
    expect(h.applied).toBe(1);
  });

  it('acks an expired command as failed without applying it', async () => {
    const enforcer = new RecordingEnforcer();
    const h = new CommandHandler({ enforcer, now: () => 1000, newId, cacheSize: 8 });
    const { ack } = await h.handle('acme', command(999));
    expect(ack).toMatchObject({ status: 'failed', reason: 'expired' });
    expect(enforcer.commands).toHaveLength(0);
  });

  it('re-acks a result the enforcer remembers (e.g. from before a restart) without applying, even once expired', async () => {
    const enforcer = new RecordingEnforcer();
    const remembered = Object.assign(enforcer, { previousResult: () => ({ status: 'applied' as const }) });
    const h = new CommandHandler({ enforcer: remembered, now: () => 1000, newId, cacheSize: 8 });
    const cmd = command(999);
    const first = await h.handle('acme', cmd);
    expect(first).toMatchObject({ duplicate: true, ack: { command_id: cmd.id, status: 'applied' } });
    expect((await h.handle('acme', cmd)).ack).toEqual(first.ack);
    expect(enforcer.commands).toHaveLength(0);
    expect(h.applied).toBe(0);
  });

  it('turns an enforcer exception into a failed ack', async () => {
    const enforcer = new RecordingEnforcer(() => {
      throw new Error('switch unreachable');
    });
    const h = new CommandHandler({ enforcer, now: () => 1, newId, cacheSize: 8 });
    const { ack } = await h.handle('acme', command(100));
    expect(ack).toMatchObject({ status: 'failed', reason: 'switch unreachable' });
    expect(h.applied).toBe(0);
  });
});

describe('checkObservation', () => {
  it('names the bad field', () => {
    expect(() => checkObservation({ device_id: 'd/1', app: 'slack', action: 'send' })).toThrow(/device_id/);
    expect(() => checkObservation({ device_id: 'd1', app: 'Slack', action: 'send' })).toThrow(/app/);
    expect(() => checkObservation({ device_id: 'd1', app: 'slack', action: 'send', ts: -1 })).toThrow(/ts/);
    expect(() => checkObservation({ device_id: 'd1', app: 'slack', action: 'send', tenant_id: '+' })).toThrow(/tenant_id/);
    expect(() => checkObservation({ device_id: 'd1', app: 'slack', action: 'send', bytes: 10 })).not.toThrow();
  });
});
