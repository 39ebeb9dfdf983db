/**
 * Audit (operations): /readyz of the embedded control plane must say whether the store answers.
 * It used to report `store: true` from the moment the API listened, whatever the store did: a
 * store failing its reads (an I/O error, a closed or corrupt SQLite file; for the API role an
 * unreachable MongoDB) left every probe 200 while every request failed, so a load balancer or an
 * orchestrator kept sending traffic to it.
 *
 * The real embedded control plane (test/support/control-plane.ts) over real HTTP; the fault is
 * injected in the store port's read (as test/e2e/audit-sqlite-full.test.ts does for a write),
 * then removed: /readyz answers 503 naming the store, then 200 again, without a restart. A read
 * that never answers (a store that hangs) is unready once the probe's bound has passed (fake
 * timers), and concurrent probes share one read (/readyz is public and not rate limited).
 *
 * And the broker: /readyz reported `broker: true` from the API's own flag, whatever the broker did:
 * with its MQTT listeners closed every probe still answered 200 while no tower could connect. Now
 * the broker is asked (Broker#accepting: its listeners bound and taking connections); checked last,
 * since it stops the shared control plane's broker.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Store } from '../shared/store/port.js';
import { startTestControlPlane, type TestControlPlane } from '../test/support/control-plane.js';
import { STORE_PROBE_TIMEOUT_MS, storeProbe } from './roots/store-probe.js';

let tcp: TestControlPlane;

beforeAll(async () => {
  tcp = await startTestControlPlane();
});

afterAll(async () => {
  await tcp?.destroy();
});

async function readyz(): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${tcp.cp.httpUrl}/readyz`);
  return { status: res.status, body: await res.json() };
}

describe('/readyz and the store', () => {
  it('answers 503 naming the store while its reads fail, and 200 again once they succeed', async () => {
    expect(await readyz()).toEqual({ status: 200, body: { status: 'ready', checks: { store: true, broker: true, pipeline: true } } });

    const tenants = tcp.cp.store.tenants;
    const get = tenants.get.bind(tenants);
    const ioError = Object.assign(new Error('disk I/O error'), { code: 'SQLITE_IOERR_READ' });
    tenants.get = () => Promise.reject(ioError);
    try {
      expect(await readyz()).toEqual({ status: 503, body: { status: 'unavailable', checks: { store: false, broker: true, pipeline: true } } });
      // Liveness is not readiness: the process itself is fine.
      expect((await fetch(`${tcp.cp.httpUrl}/healthz`)).status).toBe(200);
    } finally {
      tenants.get = get;
    }
    expect(await readyz()).toEqual({ status: 200, body: { status: 'ready', checks: { store: true, broker: true, pipeline: true } } });
  });
});

describe('the store probe', () => {
  it('a read that never answers is unready after the bound; concurrent probes share one read', async () => {
    vi.useFakeTimers();
    try {
      let reads = 0;
      const hung = { tenants: { get: () => (reads++, new Promise<never>(() => {})) } } as unknown as Store;
      const probe = storeProbe(hung);
      const answers = Promise.all([probe(), probe(), probe()]);
      expect(reads).toBe(1);
      await vi.advanceTimersByTimeAsync(STORE_PROBE_TIMEOUT_MS);
      expect(await answers).toEqual([false, false, false]);
      // The next probe asks again.
      void probe();
      expect(reads).toBe(2);
    } finally {
      vi.useRealTimers();
    }
  });
});

/** Whether a TCP connection to the MQTT port is accepted. */
function mqttPortOpen(): Promise<boolean> {
  const url = new URL(tcp.cp.mqttUrl);
  return new Promise((resolve) => {
    const socket = connect(Number(url.port), url.hostname);
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}

describe('/readyz and the broker', () => {
  it('answers 503 naming the broker once its MQTT listener is closed', async () => {
    expect(tcp.cp.broker.accepting).toBe(true);
    expect(await readyz()).toEqual({ status: 200, body: { status: 'ready', checks: { store: true, broker: true, pipeline: true } } });

    await tcp.cp.broker.stop();
    expect(await mqttPortOpen()).toBe(false);
    expect(tcp.cp.broker.accepting).toBe(false);
    expect(await readyz()).toEqual({ status: 503, body: { status: 'unavailable', checks: { store: true, broker: false, pipeline: true } } });
    // Liveness is not readiness: the process itself still answers.
    expect((await fetch(`${tcp.cp.httpUrl}/healthz`)).status).toBe(200);
  });
});
