/**
 * Live feeds over a real listening server (127.0.0.1, port 0) with real `ws` clients: the guard
 * refuses unauthenticated and operator upgrades, each tenant hears only its own events, a client
 * that stops reading is dropped and counted while the others keep receiving, and every closed
 * connection leaves the bus. Nothing sleeps: tests await socket and hub events, and run the
 * heartbeat by calling `sweep()`.
 */
import { once } from 'node:events';
import type { AddressInfo, Socket } from 'node:net';
import { decodeJwt } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { TokenService } from '../shared/auth/tokens.js';
import type { Bus, BusEvents, BusListener } from '../shared/bus.js';
import type { Alert, CommandRecord, UsageRecord } from '../shared/domain.js';
import { FEED_DROPPED_COUNTER } from './feeds.js';
import { OPERATOR_EMAIL, createTenant, json, login, post, startHarness, type Harness, type Session } from './test-support.js';
import { NO_WORKFLOW } from '../shared/store/rules/alerts.js';

interface FeedMessage {
  type: string;
  data: Record<string, unknown>;
}

/** A `ws` client that queues what it receives, so a test can await the next message in order. */
class Client {
  readonly messages: FeedMessage[] = [];
  readonly #waiters: Array<(m: FeedMessage) => void> = [];
  readonly closed: Promise<{ code: number; reason: string }>;

  constructor(readonly ws: WebSocket) {
    ws.on('message', (raw: Buffer) => {
      const m = JSON.parse(raw.toString('utf8')) as FeedMessage;
      const waiter = this.#waiters.shift();
      if (waiter) waiter(m);
      else this.messages.push(m);
    });
    this.closed = new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  }

  next(): Promise<FeedMessage> {
    const queued = this.messages.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** The underlying TCP socket (a `ws` internal): pausing it makes a client that never reads. */
  get tcp(): Socket | null {
    return (this.ws as unknown as { _socket: Socket | null })._socket;
  }
}

let h: Harness;
let base: string;
let operator: Session;
let ownerA: Session;
let ownerB: Session;
let tenantA: string;
let tenantB: string;
let ownerEmailB: string;
let appClosed = false;
let liveListeners: () => number;
const open: Client[] = [];

/** Counts bus listeners that are subscribed and not yet removed (by unsubscribe or by owner). */
function countListeners(bus: Bus): () => number {
  const live = new Set<{ owner: object | undefined }>();
  const subscribe = bus.subscribe.bind(bus);
  const removeAllFor = bus.removeAllFor.bind(bus);
  bus.subscribe = <K extends keyof BusEvents>(event: K, listener: BusListener<K>, owner?: object) => {
    const entry = { owner };
    live.add(entry);
    const off = subscribe(event, listener, owner);
    return () => {
      live.delete(entry);
      off();
    };
  };
  bus.removeAllFor = (owner: object) => {
    for (const e of live) if (e.owner === owner) live.delete(e);
    removeAllFor(owner);
  };
  return () => live.size;
}

type Auth = { query: string } | { protocol: string } | { header: string } | null;

function socketTo(path: string, auth: Auth, opts: WebSocket.ClientOptions = {}): WebSocket {
  let url = `${base}${path}`;
  if (auth && 'query' in auth) url += `${path.includes('?') ? '&' : '?'}access_token=${encodeURIComponent(auth.query)}`;
  const headers = auth && 'header' in auth ? { authorization: `Bearer ${auth.header}` } : undefined;
  const protocols = auth && 'protocol' in auth ? ['bearer', auth.protocol] : undefined;
  return new WebSocket(url, protocols, { ...opts, ...(headers && { headers }) });
}

/** Opens a feed and waits for its 'ready' message (the server has subscribed by then). */
async function connect(path: string, auth: Auth, opts: WebSocket.ClientOptions = {}): Promise<Client> {
  const client = new Client(socketTo(path, auth, opts));
  open.push(client);
  const ready = await client.next();
  expect(ready.type).toBe('ready');
  return client;
}

/** Attempts an upgrade that the server must refuse; resolves with the HTTP status and error code. */
function refused(path: string, auth: Auth): Promise<{ status: number; code: string | undefined }> {
  const ws = socketTo(path, auth);
  ws.on('error', () => {});
  return new Promise((resolve, reject) => {
    ws.once('open', () => reject(new Error(`${path}: upgrade was accepted`)));
    ws.once('unexpected-response', (req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        req.destroy();
        const body = Buffer.concat(chunks).toString('utf8');
        const code = body ? (JSON.parse(body) as { error?: { code?: string } }).error?.code : undefined;
        resolve({ status: res.statusCode ?? 0, code });
      });
    });
  });
}

let seq = 0;
const uid = (p: string) => `${p}-${++seq}`;

function alert(tenantId: string, over: Partial<Alert> = {}): Alert {
  const now = Date.now();
  return {
    id: uid('alert'),
    tenant_id: tenantId,
    device_id: 'dev-1',
    user_id: null,
    rule_id: 'rule-1',
    policy_id: 'policy-1',
    app: 'dropbox',
    action: 'upload',
    tower_id: 'twr-1',
    severity: 'high',
    count: 1,
    first_seen: now,
    last_seen: now,
    status: 'open',
    ...NO_WORKFLOW,
    ...over,
  };
}

function command(tenantId: string, over: Partial<CommandRecord> = {}): CommandRecord {
  const now = Date.now();
  return {
    id: uid('cmd'),
    tenant_id: tenantId,
    tower_id: 'twr-1',
    device_id: 'dev-1',
    type: 'block_app',
    app: 'dropbox',
    duration_s: 600,
    reason: null,
    source: 'auto',
    rule_id: 'rule-1',
    issued_by: null,
    status: 'applied',
    attempts: 1,
    created_at: now,
    updated_at: now,
    expires_at: now + 60_000,
    delivered_at: now,
    acked_at: now,
    ack_reason: null,
    ...over,
  };
}

function usage(tenantId: string, over: Partial<UsageRecord> = {}): UsageRecord {
  const now = Date.now();
  return {
    id: uid('evt'),
    tenant_id: tenantId,
    tower_id: 'twr-1',
    batch_id: 'batch-1',
    device_id: 'dev-1',
    user_id: null,
    app: 'slack',
    action: 'upload_file',
    bytes: null,
    ts: now,
    received_at: now,
    effect: 'allow',
    reason: 'default',
    rule_id: null,
    policy_id: null,
    policy_version: 1,
    local_effect: null,
    local_policy_version: null,
    disagreement: false,
    ...over,
  };
}

/** Resolves once the hub has no connection left (each close is an event; nothing polls). */
async function hubEmpty(): Promise<void> {
  while (h.app.feeds.size > 0) await once(h.app.feeds, 'closed');
}

beforeAll(async () => {
  h = await startHarness({ rateLimitPerMin: 1_000_000 });
  liveListeners = countListeners(h.bus);
  await h.app.listen({ host: '127.0.0.1', port: 0 });
  base = `ws://127.0.0.1:${(h.app.server.address() as AddressInfo).port}`;
  operator = await login(h.app, OPERATOR_EMAIL);
  const a = await createTenant(h.app, operator, 'FeedAlpha');
  const b = await createTenant(h.app, operator, 'FeedBravo');
  [ownerA, ownerB, tenantA, tenantB, ownerEmailB] = [a.owner, b.owner, a.tenantId, b.tenantId, b.ownerEmail];
});

afterEach(async () => {
  for (const c of open.splice(0)) {
    c.tcp?.resume();
    if (c.ws.readyState === WebSocket.OPEN) c.ws.close();
  }
  await hubEmpty();
  expect(liveListeners()).toBe(0);
});

afterAll(async () => {
  if (!appClosed) await h.close();
});

describe('authentication and authorization of the upgrade', () => {
  it('refuses a missing, malformed or expired token with 401 before any handshake', async () => {
    for (const path of ['/ws/alerts', '/api/v1/stream']) {
      expect(await refused(path, null)).toEqual({ status: 401, code: 'UNAUTHENTICATED' });
      expect(await refused(path, { query: 'not-a-jwt' })).toEqual({ status: 401, code: 'UNAUTHENTICATED' });
      expect(await refused(path, { protocol: 'not-a-jwt' })).toEqual({ status: 401, code: 'UNAUTHENTICATED' });
    }
    // Signed by the server's own key, but it expired an hour ago.
    const claims = decodeJwt(ownerA.access);
    const past = new TokenService(h.app.keyRing, 60, () => h.clock.now - 3_600_000);
    const expired = await past.sign({ sub: String(claims.sub), tenant_id: tenantA, role: 'owner' });
    expect(await refused('/ws/alerts', { protocol: expired })).toEqual({ status: 401, code: 'TOKEN_EXPIRED' });
    expect(await refused('/api/v1/stream', { query: expired })).toEqual({ status: 401, code: 'TOKEN_EXPIRED' });
    expect(liveListeners()).toBe(0);
  });

  it('refuses operators with 403: feeds are tenant data', async () => {
    expect(await refused('/ws/alerts', { query: operator.access })).toEqual({ status: 403, code: 'FORBIDDEN' });
    expect(await refused('/api/v1/stream', { protocol: operator.access })).toEqual({ status: 403, code: 'FORBIDDEN' });
  });

  it('accepts the token as a query parameter, a bearer subprotocol or an Authorization header', async () => {
    const viaQuery = await connect('/ws/alerts', { query: ownerA.access });
    const viaProtocol = await connect('/ws/alerts', { protocol: ownerA.access });
    const viaHeader = await connect('/api/v1/stream', { header: ownerA.access });
    // The server picks 'bearer' and never echoes the token back as the subprotocol.
    expect(viaProtocol.ws.protocol).toBe('bearer');
    expect(viaQuery.ws.protocol).toBe('');
    expect(viaHeader.ws.readyState).toBe(WebSocket.OPEN);
  });

  it("accepts an API key holding 'feeds:read' and refuses one without it", async () => {
    const withScope = await post<{ key: string }>(h.app, ownerA, '/api/v1/api-keys', { name: 'dashboard', scopes: ['feeds:read', 'alerts:read', 'remediation:read'] });
    const without = await post<{ key: string }>(h.app, ownerA, '/api/v1/api-keys', { name: 'crm', scopes: ['devices:read'] });
    const feed = await connect('/ws/alerts', { protocol: withScope.key });
    h.bus.publish('alert.opened', { tenant_id: tenantA, alert: alert(tenantA) });
    expect((await feed.next()).type).toBe('alert.opened');
    expect(await refused('/ws/alerts', { query: without.key })).toEqual({ status: 403, code: 'FORBIDDEN' });
  });

  it('answers a plain HTTP GET with the API error body, not an empty 404', async () => {
    for (const url of ['/ws/alerts', '/api/v1/stream']) {
      const anonymous = await h.app.inject({ method: 'GET', url });
      expect(anonymous.statusCode, url).toBe(401);
      const res = await h.app.inject({ method: 'GET', url, headers: ownerA.headers });
      expect(res.statusCode, url).toBe(400);
      expect(res.headers.upgrade).toBe('websocket');
      expect(json(res)).toMatchObject({ error: { code: 'BAD_REQUEST' } });
    }
  });

  it('refuses an invalid filter with 400 before the handshake', async () => {
    const res = await refused('/api/v1/stream?effect=maybe', { query: ownerA.access });
    expect(res).toEqual({ status: 400, code: 'VALIDATION_FAILED' });
  });
});

describe('/ws/alerts', () => {
  it("pushes the tenant's alerts and remediations as {type, data}, and nothing of another tenant", async () => {
    const a = await connect('/ws/alerts', { query: ownerA.access });
    const b = await connect('/ws/alerts', { protocol: ownerB.access });
    const a1 = alert(tenantA);
    const b1 = alert(tenantB);
    const a1Bumped = { ...a1, count: 2 };
    const cmdA = command(tenantA);
    const cmdB = command(tenantB, { status: 'delivered' });
    h.bus.publish('alert.opened', { tenant_id: tenantA, alert: a1 });
    h.bus.publish('alert.opened', { tenant_id: tenantB, alert: b1 });
    h.bus.publish('alert.updated', { tenant_id: tenantA, alert: a1Bumped });
    h.bus.publish('command.updated', { tenant_id: tenantA, command: cmdA });
    h.bus.publish('command.updated', { tenant_id: tenantB, command: cmdB });
    // Events the alerts feed does not carry.
    h.bus.publish('usage.decided', { tenant_id: tenantA, tower_id: 'twr-1', records: [usage(tenantA)] });
    const marker = alert(tenantA, { id: 'marker-a' });
    h.bus.publish('alert.opened', { tenant_id: tenantA, alert: marker });
    const markerB = alert(tenantB, { id: 'marker-b' });
    h.bus.publish('alert.opened', { tenant_id: tenantB, alert: markerB });

    // One socket delivers in order: each next() proves nothing else arrived before it.
    expect(await a.next()).toEqual({ type: 'alert.opened', data: a1 });
    expect(await a.next()).toEqual({ type: 'alert.updated', data: a1Bumped });
    expect(await a.next()).toEqual({ type: 'remediation', data: cmdA });
    expect(await a.next()).toEqual({ type: 'alert.opened', data: marker });
    expect(await b.next()).toEqual({ type: 'alert.opened', data: b1 });
    expect(await b.next()).toEqual({ type: 'remediation', data: cmdB });
    expect(await b.next()).toEqual({ type: 'alert.opened', data: markerB });
  });
});

describe('/api/v1/stream', () => {
  it("streams the tenant's decided usage, filtered by device and effect, without extra fields", async () => {
    const all = await connect('/api/v1/stream', { query: ownerA.access });
    const filtered = await connect('/api/v1/stream?device_id=dev-9&effect=deny', { query: ownerA.access });
    const other = await connect('/api/v1/stream', { query: ownerB.access });
    const allow9 = usage(tenantA, { device_id: 'dev-9' });
    const deny9 = usage(tenantA, { device_id: 'dev-9', effect: 'deny', reason: 'rule', rule_id: 'r', policy_id: 'p' });
    const deny1 = usage(tenantA, { effect: 'deny', reason: 'default' });
    // The pipeline's records can carry more than a UsageRecord (e.g. severity); the feed sends the record shape.
    const withSeverity = { ...deny9, severity: 'high' } as UsageRecord;
    h.bus.publish('usage.decided', { tenant_id: tenantA, tower_id: 'twr-1', records: [allow9, withSeverity, deny1] });
    const noMatch = usage(tenantA, { device_id: 'dev-1' });
    h.bus.publish('usage.decided', { tenant_id: tenantA, tower_id: 'twr-2', records: [noMatch] });
    const later = usage(tenantA, { device_id: 'dev-9', effect: 'deny', reason: 'default' });
    h.bus.publish('usage.decided', { tenant_id: tenantA, tower_id: 'twr-3', records: [later] });
    const bRecord = usage(tenantB);
    h.bus.publish('usage.decided', { tenant_id: tenantB, tower_id: 'twr-b', records: [bRecord] });

    expect(await all.next()).toEqual({ type: 'usage.decided', data: { tower_id: 'twr-1', records: [allow9, deny9, deny1] } });
    expect(await all.next()).toEqual({ type: 'usage.decided', data: { tower_id: 'twr-2', records: [noMatch] } });
    expect(await all.next()).toEqual({ type: 'usage.decided', data: { tower_id: 'twr-3', records: [later] } });
    // The batch with no match sent nothing: the next message after the first is the third batch.
    expect(await filtered.next()).toEqual({ type: 'usage.decided', data: { tower_id: 'twr-1', records: [deny9] } });
    expect(await filtered.next()).toEqual({ type: 'usage.decided', data: { tower_id: 'twr-3', records: [later] } });
    expect(await other.next()).toEqual({ type: 'usage.decided', data: { tower_id: 'twr-b', records: [bRecord] } });
  });
});

describe('backpressure and lifecycle', () => {
  it('drops a client that stops reading, counts it, and keeps serving the others', async () => {
    // Long enough that a stalled peer cannot finish the close handshake by accident of timing.
    h.app.feeds.limits.closeGraceMs = 60_000;
    const normal = await connect('/api/v1/stream', { query: ownerA.access });
    const slow = await connect('/api/v1/stream', { protocol: ownerA.access });
    expect(liveListeners()).toBe(2);
    slow.tcp!.pause();
    const dropped = once(h.app.feeds, 'dropped');
    // ~200 KB per batch; each is awaited at the normal client, so only the paused one falls behind.
    const records = Array.from({ length: 600 }, () => usage(tenantA, { app: 'x'.repeat(64) }));
    let batches = 0;
    while (h.counters.total(FEED_DROPPED_COUNTER) === 0 && batches < 500) {
      const tower_id = `twr-${batches++}`;
      h.bus.publish('usage.decided', { tenant_id: tenantA, tower_id, records });
      expect((await normal.next()).data.tower_id).toBe(tower_id);
    }
    expect(await dropped).toEqual(['stream', tenantA, 'slow_consumer']);
    expect(h.counters.get(FEED_DROPPED_COUNTER, { feed: 'stream', reason: 'slow_consumer' })).toBe(1);
    // The dropped client left the bus at once; the normal one is still subscribed and served.
    expect(liveListeners()).toBe(1);
    h.bus.publish('usage.decided', { tenant_id: tenantA, tower_id: 'after-drop', records: [usage(tenantA)] });
    expect((await normal.next()).data.tower_id).toBe('after-drop');
    // Once it reads again, the slow client finds the close frame behind what it had not read.
    slow.tcp!.resume();
    expect((await slow.closed).code).toBe(1013);
    expect(normal.ws.readyState).toBe(WebSocket.OPEN);
  });

  it('removes every listener of a connection when it closes', async () => {
    const clients = [
      await connect('/ws/alerts', { query: ownerA.access }),
      await connect('/ws/alerts', { query: ownerB.access }),
      await connect('/api/v1/stream', { query: ownerA.access }),
    ];
    // An alerts feed listens to 6 events (opened, updated, the 3 workflow steps, command.updated).
    expect(liveListeners()).toBe(6 + 6 + 1);
    for (const c of clients) {
      const closed = once(h.app.feeds, 'closed');
      c.ws.close();
      await closed;
    }
    expect(h.app.feeds.size).toBe(0);
    expect(liveListeners()).toBe(0);
  });

  it('pings on each heartbeat, keeps clients that answer and terminates those that do not', async () => {
    const alive = await connect('/ws/alerts', { query: ownerA.access });
    const dead = await connect('/ws/alerts', { query: ownerA.access }, { autoPong: false });
    const serverSockets = [...h.app.websocketServer.clients];
    expect(serverSockets).toHaveLength(2);
    const pongs = serverSockets.map((s) => once(s, 'pong'));
    const pinged = [once(alive.ws, 'ping'), once(dead.ws, 'ping')];
    h.app.feeds.sweep();
    await Promise.all(pinged);
    // Exactly one server socket hears a pong: the alive client's.
    await Promise.race(pongs);
    h.app.feeds.sweep();
    expect((await dead.closed).code).toBe(1006);
    expect(h.counters.get(FEED_DROPPED_COUNTER, { feed: 'alerts', reason: 'heartbeat_timeout' })).toBe(1);
    expect(alive.ws.readyState).toBe(WebSocket.OPEN);
    h.bus.publish('alert.opened', { tenant_id: tenantA, alert: alert(tenantA, { id: 'still-served' }) });
    expect((await alive.next()).data.id).toBe('still-served');
    expect(liveListeners()).toBe(6);
  });

  // Moves the shared clock past every token's expiry: only sign-ins after it still work.
  it('closes a feed with 4401 once its access token has expired', async () => {
    const feed = await connect('/ws/alerts', { protocol: ownerA.access });
    h.clock.advance(901_000);
    h.app.feeds.sweep();
    expect(await feed.closed).toEqual({ code: 4401, reason: 'credential expired' });
    const res = await h.app.inject({ method: 'GET', url: '/api/v1/me', headers: ownerA.headers });
    expect(json(res)).toMatchObject({ error: { code: 'TOKEN_EXPIRED' } });
  });

  // After the clock moved: signs in again, then shuts the whole app down.
  it('closes every feed with 1001 when the app shuts down', async () => {
    const fresh = await login(h.app, ownerEmailB);
    const a = await connect('/ws/alerts', { query: fresh.access });
    const s = await connect('/api/v1/stream', { protocol: fresh.access });
    appClosed = true;
    const closing = h.close();
    expect((await a.closed).code).toBe(1001);
    expect((await s.closed).code).toBe(1001);
    await closing;
  });
});
