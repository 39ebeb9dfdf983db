/**
 * Audit (wiring): the embedded control plane's /readyz reported `broker: true` from the API's own
 * flag, whatever the broker did: with its MQTT listeners closed (the broker stopped under a
 * running API) every probe still answered 200 while no tower could connect. Now the broker is
 * asked (Broker#accepting: its listeners bound and taking connections).
 *
 * The real embedded control plane over real HTTP and a real MQTT connection attempt.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestControlPlane, type TestControlPlane } from '../test/support/control-plane.js';

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

/** Whether a TCP connection to the MQTT port is accepted. */
function mqttPortOpen(): Promise<boolean> {
  const url = new URL(tcp.cp.mqttUrl);
  return new Promise((resolve) => {
    const socket = connect(Number(url.port), url.hostname);
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}

it('/readyz answers 503 naming the broker once its MQTT listener is closed', async () => {
  expect(tcp.cp.broker.accepting).toBe(true);
  expect(await readyz()).toEqual({ status: 200, body: { status: 'ready', checks: { store: true, broker: true, pipeline: true } } });

  await tcp.cp.broker.stop();
  expect(await mqttPortOpen()).toBe(false);
  expect(tcp.cp.broker.accepting).toBe(false);
  expect(await readyz()).toEqual({ status: 503, body: { status: 'unavailable', checks: { store: true, broker: false, pipeline: true } } });
  // Liveness is not readiness: the process itself still answers.
  expect((await fetch(`${tcp.cp.httpUrl}/healthz`)).status).toBe(200);
});
