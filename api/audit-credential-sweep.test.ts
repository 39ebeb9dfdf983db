/**
 * The hub's credential rounds (feeds.ts) over real WebSockets and a real hub: each feed's
 * credential check is the port the routes fill from the store (credential-recheck.ts), here a read
 * the test holds or fails, so a round can be caught in flight and a store outage made to last.
 * - A round asked for while one is in flight (a bus gap, a caller that knows something changed)
 *   runs after it, and does not join it: the running round's reads may predate the revocation.
 * - A store outage is reported once, not once per credential per round, and its end once.
 * - A round holds at most 16 reads in flight, however many credentials are open.
 * Nothing sleeps: tests await socket events and the hub's round promises.
 */
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { InProcessBus } from '../shared/bus.js';
import { Counters } from '../shared/metrics.js';
import { FEED_DROPPED_COUNTER, FeedHub, type FeedClient } from './feeds.js';

let server: WebSocketServer;
let hub: FeedHub;
let counters: Counters;
let errors: unknown[];
let recoveries: number;
/** The FeedClient each next upgrade is opened with. */
const pending: FeedClient[] = [];
const sockets: WebSocket[] = [];

beforeEach(async () => {
  errors = [];
  recoveries = 0;
  counters = new Counters();
  hub = new FeedHub({
    bus: new InProcessBus(),
    counters,
    clock: () => 0,
    onError: (err) => errors.push(err),
    onRecheckRecovered: () => recoveries++,
  });
  server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((resolve) => server.once('listening', resolve));
  server.on('connection', (socket) => hub.openAlerts(socket, pending.shift()!));
});

afterEach(async () => {
  hub.stop();
  for (const ws of sockets.splice(0)) ws.terminate();
  await new Promise((resolve) => server.close(resolve));
});

/** Opens a feed under `authorization` and waits for its 'ready' message. */
async function openFeed(key: string, stillAuthorized: () => Promise<boolean>): Promise<{ ws: WebSocket; closed: Promise<number> }> {
  pending.push({ tenantId: 't1', principal: { kind: 'api_key', id: key }, expiresAt: null, authorization: { key, stillAuthorized } });
  const ws = new WebSocket(`ws://127.0.0.1:${(server.address() as AddressInfo).port}/`);
  sockets.push(ws);
  const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
  await new Promise((resolve) => ws.once('message', resolve));
  return { ws, closed };
}

function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

describe('credential rounds of the live feeds', () => {
  it('a round asked for during a round whose read predates the revocation runs again and closes the feed', async () => {
    let revoked = false;
    let reads = 0;
    const firstRead = deferred<void>();
    const answerFirst = deferred<void>();
    const feed = await openFeed('api_key:k1', async () => {
      // What the store says when the read is made; the first read is answered late.
      const stands = !revoked;
      if (++reads === 1) {
        firstRead.resolve();
        await answerFirst.promise;
      }
      return stands;
    });
    const first = hub.recheckAuthorizations();
    await firstRead.promise;
    // Revoked after the first round read the key, and the caller knows it (a bus gap reported).
    revoked = true;
    const second = hub.recheckAuthorizations();
    answerFirst.resolve();
    await first;
    await second;
    expect(reads).toBe(2);
    expect(hub.size).toBe(0);
    expect(await feed.closed).toBe(4401);
    expect(counters.get(FEED_DROPPED_COUNTER, { feed: 'alerts', reason: 'revoked' })).toBe(1);
  });

  it('reports a store outage once, however many credentials and rounds, keeps the feeds, and reports its end once', async () => {
    let down = true;
    const read = () => (down ? Promise.reject(new Error('store unavailable')) : Promise.resolve(true));
    const feeds = [await openFeed('api_key:a', read), await openFeed('api_key:b', read), await openFeed('user:u:0', read)];
    for (let i = 0; i < 3; i++) await hub.recheckAuthorizations();
    expect(errors).toHaveLength(1);
    expect(recoveries).toBe(0);
    down = false;
    await hub.recheckAuthorizations();
    await hub.recheckAuthorizations();
    expect(recoveries).toBe(1);
    down = true;
    await hub.recheckAuthorizations();
    expect(errors).toHaveLength(2);
    for (const f of feeds) expect(f.ws.readyState).toBe(WebSocket.OPEN);
    expect(hub.size).toBe(3);
  });

  it('holds at most 16 reads in flight in a round, and still reads every credential once', async () => {
    let inFlight = 0;
    let most = 0;
    const waiting: Array<() => void> = [];
    const reads = new Map<string, number>();
    for (let i = 0; i < 40; i++) {
      const key = `api_key:k${i}`;
      await openFeed(key, () => {
        reads.set(key, (reads.get(key) ?? 0) + 1);
        most = Math.max(most, ++inFlight);
        const d = deferred<boolean>();
        waiting.push(() => {
          inFlight--;
          d.resolve(true);
        });
        return d.promise;
      });
    }
    const round = hub.recheckAuthorizations();
    // Answer reads one at a time, in the order they were made, until the round has made them all.
    for (let answered = 0; answered < 40; answered++) {
      await new Promise((resolve) => setImmediate(resolve));
      waiting.shift()!();
    }
    await round;
    expect(most).toBe(16);
    expect([...reads.values()]).toEqual(Array(40).fill(1));
  });
});
