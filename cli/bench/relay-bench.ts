/**
 * The ceiling: a bare Aedes (relay-broker.ts: no auth, no ACL, no pipeline, in a child process of
 * its own like the control plane) relaying usage batches from tower connections to one QoS 1
 * subscriber. Two uses:
 *  - relayStream: the SAME message stream as a pipeline step — the batch sizes each tower's agent
 *    actually published in that step (adaptive batching makes them depend on load), on the same
 *    number of tower connections, with the same payload shape, QoS 1 — replayed as fast as the
 *    relay carries it. pipeline / relay on that stream is the fair ratio.
 *  - benchRelay: a fixed stream (N towers, B-event batches), the classic raw-relay figure.
 * Both report MQTT messages/s and events/s separately, after an unreported warm-up. Payloads are
 * encoded before the clock starts: the figure is the broker's, not JSON.stringify's.
 */
import mqtt, { type MqttClient } from 'mqtt';
import { createIdFactory } from '../../shared/ids.js';
import { mqttClientLog } from '../../shared/mqtt/client-log.js';
import { encodePayload, type UsageBatch } from '../../shared/mqtt/payloads.js';
import { filters, topics } from '../../shared/mqtt/topics.js';
import { nodeArgsFor, siblingScript, spawnAndWait, type Child } from './child.js';

/** The usage batches a fleet published, per tower, in order (event count of each). */
export interface RecordedStream {
  perTower: number[][];
}

export interface StreamSummary {
  towers: number;
  batches: number;
  events: number;
  mean_batch_events: number;
  p50_batch_events: number;
  p99_batch_events: number;
  max_batch_events: number;
}

export interface RelayResult {
  towers: number;
  qos: 1;
  /** Publishes awaiting PUBACK per tower connection. */
  window: number;
  seconds: number;
  messages: number;
  events: number;
  msgs_per_s: number;
  events_per_s: number;
  mean_batch_events: number;
}

export function summarizeStream(stream: RecordedStream): StreamSummary {
  const sizes = stream.perTower.flat().sort((a, b) => a - b);
  const events = sizes.reduce((n, x) => n + x, 0);
  const at = (q: number): number => sizes[Math.min(sizes.length - 1, Math.floor(q * sizes.length))] ?? 0;
  return {
    towers: stream.perTower.filter((t) => t.length > 0).length,
    batches: sizes.length,
    events,
    mean_batch_events: sizes.length > 0 ? events / sizes.length : 0,
    p50_batch_events: at(0.5),
    p99_batch_events: at(0.99),
    max_batch_events: sizes[sizes.length - 1] ?? 0,
  };
}

/** The bare broker, started once and reused for every stream replayed on it. */
export class RelayBroker {
  #child: Child | null = null;
  url = '';

  async start(): Promise<void> {
    const script = siblingScript(import.meta.url, 'relay-broker');
    const { child, value } = await spawnAndWait(nodeArgsFor(script), (l) => {
      try {
        return (JSON.parse(l) as { port?: number }).port;
      } catch {
        return undefined;
      }
    });
    this.#child = child;
    this.url = `mqtt://127.0.0.1:${value}`;
  }

  async stop(): Promise<void> {
    await this.#child?.stop();
    this.#child = null;
  }
}

/** One encoded UsageBatch per distinct size, shaped like the agent's (ULIDs, device ids, app, action). */
function payloadsFor(sizes: Iterable<number>): Map<number, Buffer> {
  const newId = createIdFactory();
  const out = new Map<number, Buffer>();
  for (const n of sizes) {
    if (out.has(n)) continue;
    const now = Date.now();
    const batch: UsageBatch = {
      v: 1,
      id: newId(),
      sent_at: now,
      events: Array.from({ length: n }, (_, k) => ({ id: newId(), ts: now, device_id: `a1b2c3t0-u${k % 250}-d${k % 2}`, app: 'slack', action: 'send_message' })),
    };
    out.set(n, encodePayload(batch));
  }
  return out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Replays `stream` through the relay as fast as it carries it: every tower connection publishes
 * its own batch sizes in order (cycling), `window` publishes in flight, QoS 1; one subscriber.
 */
export async function relayStream(url: string, stream: RecordedStream, opts: { seconds: number; warmupSeconds: number; window: number }): Promise<RelayResult> {
  const active = stream.perTower.filter((t) => t.length > 0);
  const payloads = payloadsFor(active.flat());
  // Payload length → events: the subscriber counts events without decoding anything.
  const eventsByLength = new Map([...payloads].map(([n, p]) => [p.length, n]));
  // The same client logger as the agents' (no per-packet `debug` calls): a like-for-like load generator.
  const sub = await mqtt.connectAsync(url, { protocolVersion: 4, reconnectPeriod: 0, clientId: 'relay-sub', ...mqttClientLog() });
  let messages = 0;
  let events = 0;
  sub.on('message', (_t, payload) => {
    messages++;
    events += eventsByLength.get(payload.length) ?? 0;
  });
  await sub.subscribeAsync(filters.allUsage, { qos: 1 });
  const pubs: MqttClient[] = await Promise.all(active.map((_, i) => mqtt.connectAsync(url, { protocolVersion: 4, reconnectPeriod: 0, clientId: `relay-tower-${i}`, ...mqttClientLog() })));
  let running = true;
  const loops = pubs.map(async (c, i) => {
    const sizes = active[i]!;
    const topic = topics.usage('bench', `T${i}`);
    let k = 0;
    const inFlight = new Set<Promise<unknown>>();
    while (running) {
      const p = c.publishAsync(topic, payloads.get(sizes[k++ % sizes.length]!)!, { qos: 1 });
      inFlight.add(p);
      const done = (): void => void inFlight.delete(p);
      p.then(done, done);
      if (inFlight.size >= opts.window) await Promise.race(inFlight);
    }
    await Promise.allSettled(inFlight);
  });
  await sleep(opts.warmupSeconds * 1000);
  const m0 = messages;
  const e0 = events;
  const t0 = performance.now();
  await sleep(opts.seconds * 1000);
  const seconds = (performance.now() - t0) / 1000;
  const m = messages - m0;
  const e = events - e0;
  running = false;
  await Promise.all(loops);
  await Promise.all([...pubs, sub].map((c) => c.endAsync()));
  return { towers: active.length, qos: 1, window: opts.window, seconds, messages: m, events: e, msgs_per_s: m / seconds, events_per_s: e / seconds, mean_batch_events: m > 0 ? e / m : 0 };
}

/** The fixed-stream relay: `towers` connections each publishing `batchEvents`-event batches. */
export async function benchRelay(opts: { towers: number; batchEvents: number; seconds: number; warmupSeconds: number; window: number }): Promise<RelayResult & { batch_events: number }> {
  const broker = new RelayBroker();
  await broker.start();
  try {
    const r = await relayStream(broker.url, { perTower: Array.from({ length: opts.towers }, () => [opts.batchEvents]) }, opts);
    return { ...r, batch_events: opts.batchEvents };
  } finally {
    await broker.stop();
  }
}
