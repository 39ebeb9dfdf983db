/**
 * Test support (not a *.test.ts file): a real, plain Aedes broker on 127.0.0.1, port 0, and a
 * recorder for what an observing "cloud" client receives. Used by edge-agent and simulator tests.
 */
import { createServer as createHttpServer } from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { Aedes } from 'aedes';
import { connectAsync, type MqttClient } from 'mqtt';
import { createWebSocketStream, WebSocketServer } from 'ws';

export interface TestBroker {
  url: string;
  aedes: Aedes;
  /** Drops a client's TCP connection from the broker side, without warning. */
  dropClient(clientId: string): boolean;
  close(): Promise<void>;
}

export type TestTransport = 'tcp' | 'ws';

/** Aedes over plain TCP (mqtt://) or WebSocket (ws://…/mqtt), no authentication. */
export async function startTestBroker(transport: TestTransport = 'tcp'): Promise<TestBroker> {
  const aedes = await Aedes.createBroker();
  const sockets = new Set<net.Socket>();
  const track = (s: net.Socket): void => {
    // Like a production broker should: no Nagle delay on small latency-critical packets.
    s.setNoDelay(true);
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  };
  let server: net.Server;
  let wss: WebSocketServer | undefined;
  if (transport === 'tcp') {
    server = net.createServer(aedes.handle);
  } else {
    const http = createHttpServer();
    wss = new WebSocketServer({ server: http, path: '/mqtt' });
    wss.on('connection', (ws, req) => {
      // ws re-emits late socket errors on the WebSocket itself once its stream is gone.
      ws.on('error', () => {});
      aedes.handle(createWebSocketStream(ws), req);
    });
    server = http;
  }
  server.on('connection', track);
  const raw = new Map<string, net.Socket>();
  aedes.on('client', (c) => {
    const socket = c.conn instanceof net.Socket ? c.conn : c.req?.socket;
    if (socket instanceof net.Socket) raw.set(c.id, socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: transport === 'tcp' ? `mqtt://127.0.0.1:${port}` : `ws://127.0.0.1:${port}/mqtt`,
    aedes,
    dropClient: (clientId) => {
      const socket = raw.get(clientId);
      socket?.destroy();
      return socket !== undefined;
    },
    close: async () => {
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      for (const s of sockets) s.destroy();
      if (wss) await new Promise<void>((resolve) => wss.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface RecordedMessage {
  topic: string;
  payload: Buffer;
  retain: boolean;
}

/** An MQTT client that records every message on its subscriptions and lets tests await them. */
export class MessageRecorder {
  readonly messages: RecordedMessage[] = [];
  readonly client: MqttClient;
  readonly #waiters = new Set<() => void>();

  private constructor(client: MqttClient) {
    this.client = client;
    client.on('message', (topic, payload, packet) => {
      this.messages.push({ topic, payload, retain: packet.retain });
      for (const w of [...this.#waiters]) w();
    });
  }

  static async connect(url: string, subscribe: string[], clientId = `recorder-${Math.random().toString(36).slice(2)}`): Promise<MessageRecorder> {
    const client = await connectAsync(url, { clientId, protocolVersion: 4, reconnectPeriod: 0 });
    const rec = new MessageRecorder(client);
    if (subscribe.length > 0) await client.subscribeAsync(subscribe, { qos: 1 });
    return rec;
  }

  /** Messages whose topic is exactly `topic`, payloads parsed as JSON. */
  json<T>(topic: string): T[] {
    return this.messages.filter((m) => m.topic === topic).map((m) => JSON.parse(m.payload.toString('utf8')) as T);
  }

  /** Resolves with the first truthy result of `probe`, re-evaluated on every message. */
  waitFor<T>(probe: () => T | undefined | null | false, what = 'condition', timeoutMs = 10_000): Promise<T> {
    const first = probe();
    if (first) return Promise.resolve(first);
    return new Promise<T>((resolve, reject) => {
      const check = (): void => {
        const r = probe();
        if (!r) return;
        this.#waiters.delete(check);
        clearTimeout(timer);
        resolve(r);
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(new Error(`timed out waiting for ${what}`));
      }, timeoutMs);
      this.#waiters.add(check);
    });
  }

  async publishJson(topic: string, value: unknown, opts: { retain?: boolean } = {}): Promise<void> {
    await this.client.publishAsync(topic, JSON.stringify(value), { qos: 1, retain: opts.retain ?? false });
  }

  async close(): Promise<void> {
    await this.client.endAsync(true);
  }
}
