/**
 * (a) The ceiling: how many batched usage events per second a bare Aedes relays from many tower
 * connections to one subscriber, with the same payloads the agents send and QoS 1.
 */
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { createIdFactory } from '../../shared/ids.js';
import { encodePayload, type UsageBatch } from '../../shared/mqtt/payloads.js';
import { filters, topics } from '../../shared/mqtt/topics.js';
import { spawnAndWait } from './child.js';

export interface RelayBenchResult {
  towers: number;
  batch_events: number;
  seconds: number;
  batches: number;
  events_per_s: number;
}

export async function benchRelay(opts: { towers: number; batchEvents: number; seconds: number; window: number }): Promise<RelayBenchResult> {
  const script = fileURLToPath(new URL('./relay-broker.ts', import.meta.url));
  const { child, value } = await spawnAndWait([script], (l) => {
    try {
      return (JSON.parse(l) as { port?: number }).port;
    } catch {
      return undefined;
    }
  });
  const url = `mqtt://127.0.0.1:${value}`;
  const newId = createIdFactory();
  const sub = await mqtt.connectAsync(url, { protocolVersion: 4, reconnectPeriod: 0, clientId: 'bench-sub' });
  let received = 0;
  sub.on('message', () => {
    received++;
  });
  await sub.subscribeAsync(filters.allUsage, { qos: 1 });

  const pubs = await Promise.all(
    Array.from({ length: opts.towers }, (_, i) =>
      mqtt.connectAsync(url, { protocolVersion: 4, reconnectPeriod: 0, clientId: `bench-tower-${i}` }),
    ),
  );
  const payloadFor = (): Buffer => {
    const now = Date.now();
    const batch: UsageBatch = {
      v: 1,
      id: newId(),
      sent_at: now,
      events: Array.from({ length: opts.batchEvents }, (_, k) => ({
        id: newId(),
        ts: now,
        device_id: `dev${k}`,
        app: 'slack',
        action: 'upload_file',
      })),
    };
    return encodePayload(batch);
  };
  // Pre-built payloads: we measure the broker, not JSON.stringify in the generator.
  const payloads = Array.from({ length: 64 }, payloadFor);

  let running = true;
  const start = performance.now();
  const receivedAtStart = received;
  const loops = pubs.map(async (c, i) => {
    const topic = topics.usage('bench', `T${i}`);
    let k = 0;
    while (running) {
      const window: Array<Promise<unknown>> = [];
      for (let w = 0; w < opts.window; w++) window.push(c.publishAsync(topic, payloads[k++ % payloads.length]!, { qos: 1 }));
      await Promise.all(window);
    }
  });
  await new Promise((r) => setTimeout(r, opts.seconds * 1000));
  running = false;
  const seconds = (performance.now() - start) / 1000;
  const batches = received - receivedAtStart;
  await Promise.all(loops);
  await Promise.all([...pubs, sub].map((c) => c.endAsync()));
  await child.stop();
  return { towers: opts.towers, batch_events: opts.batchEvents, seconds, batches, events_per_s: (batches * opts.batchEvents) / seconds };
}
