/**
 * Ids that are not valid Realtime Database keys, at the firebase-admin boundary. The writer below
 * applies the SDK's own path rules (@firebase/database: INVALID_PATH_REGEX_, and Path dropping
 * empty segments): an invalid path makes the SDK refuse the whole multi-path update, and an empty
 * segment silently moves the write to another node.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { InProcessBus } from '../bus.js';
import type { Alert } from '../domain.js';
import { Counters } from '../metrics.js';
import { NOW, testAlert } from './test-alerts.js';
import { FirebaseSink } from './firebase-sink.js';
import type { RealtimeWriter } from './realtime-writer.js';

const FLUSH_MS = 1000;
// eslint-disable-next-line no-control-regex -- the SDK's own rule, control characters included
const SDK_INVALID_PATH = /[[\].#$\u0000-\u001F\u007F]/;

/** Stores values under the paths the SDK would write, refusing what the SDK refuses. */
class SdkRulesWriter implements RealtimeWriter {
  readonly written = new Map<string, unknown>();
  refused = 0;

  async update(values: Record<string, unknown>): Promise<void> {
    if (Object.keys(values).some((p) => SDK_INVALID_PATH.test(p))) {
      this.refused++;
      throw new Error('Reference.update failed: first argument contains an invalid key');
    }
    for (const [path, v] of Object.entries(values)) this.written.set(path.split('/').filter((s) => s !== '').join('/'), v);
  }

  async close(): Promise<void> {}
}

function alert(id: string, tenant: string): Alert {
  return testAlert(id, { tenant_id: tenant });
}

let bus: InProcessBus;
let writer: SdkRulesWriter;
let sink: FirebaseSink;

beforeEach(() => {
  vi.useFakeTimers();
  bus = new InProcessBus();
  writer = new SdkRulesWriter();
  sink = new FirebaseSink({ bus, writer, counters: new Counters(), flushMs: FLUSH_MS, now: () => NOW });
  sink.start();
});
afterEach(async () => {
  await sink.stop();
  vi.useRealTimers();
});

describe('FirebaseSink keys the SDK would refuse or move', () => {
  it('escapes control characters, so one odd id does not get every later write refused', async () => {
    bus.publish('alert.opened', { tenant_id: 't\n1', alert: alert('a\u007f1', 't\n1') });
    bus.publish('alert.opened', { tenant_id: 't2', alert: alert('a2', 't2') });
    await vi.advanceTimersByTimeAsync(FLUSH_MS);
    expect(writer.refused).toBe(0);
    expect([...writer.written.keys()].sort()).toEqual(['tenants/t%0A1/alerts/a%7F1', 'tenants/t2/alerts/a2']);
  });

  it('keeps an empty id in its own node instead of writing over another one', async () => {
    bus.publish('alert.opened', { tenant_id: 'alerts', alert: alert('x', 'alerts') });
    bus.publish('alert.opened', { tenant_id: '', alert: alert('x', '') });
    bus.publish('alert.opened', { tenant_id: 't1', alert: alert('', 't1') });
    await vi.advanceTimersByTimeAsync(FLUSH_MS);
    expect(writer.refused).toBe(0);
    expect([...writer.written.keys()].sort()).toEqual(['tenants/%/alerts/x', 'tenants/alerts/alerts/x', 'tenants/t1/alerts/%']);
  });
});
