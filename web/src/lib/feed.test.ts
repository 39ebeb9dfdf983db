/**
 * LiveFeed's reconnection policy on fake timers, with the browser's WebSocket replaced at its
 * boundary by a scripted socket (the real one is exercised by test/e2e/console-live.test.ts):
 * the token goes in the subprotocol, delays double from 0.5 s to 30 s and reset once a
 * connection is ready, a reconnection triggers a resume, 4401 refreshes the token first, 4403 stops,
 * and no race with "reconnect now" leaves two sockets open.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LiveFeed, backoffDelay, type FeedStatus } from './feed';
import type { Session } from './session';

class ScriptedSocket {
  readyState = 0;
  onmessage: ((ev: { data: string }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  closed: number | null = null;
  constructor(
    readonly url: string,
    readonly protocols: string[],
  ) {}
  ready(): void {
    this.readyState = 1;
    this.onmessage?.({ data: JSON.stringify({ type: 'ready', data: {} }) });
  }
  send(type: string, data: unknown): void {
    this.onmessage?.({ data: JSON.stringify({ type, data }) });
  }
  drop(code: number): void {
    this.readyState = 3;
    this.onclose?.({ code, reason: '' });
  }
  close(code: number): void {
    this.closed = code;
    this.readyState = 3;
  }
}

function setup() {
  const sockets: ScriptedSocket[] = [];
  const statuses: FeedStatus[] = [];
  const messages: unknown[] = [];
  let resumes = 0;
  const session = { ended: false, accessToken: vi.fn(async () => 'tok-1'), refresh: vi.fn(async () => undefined) };
  const feed = new LiveFeed({
    path: '/api/v1/stream',
    session: session as unknown as Session,
    onMessage: (m) => messages.push(m),
    onStatus: (s) => statuses.push(s),
    onResume: () => resumes++,
    random: () => 1,
    createSocket: (url, protocols) => {
      const s = new ScriptedSocket(url, protocols);
      sockets.push(s);
      return s as unknown as WebSocket;
    },
  });
  return { feed, sockets, statuses, messages, session, resumes: () => resumes };
}

/** Lets the connect step (which awaits the token) run. */
const settle = () => vi.advanceTimersByTimeAsync(0);

describe('LiveFeed', () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.stubGlobal('location', { protocol: 'http:', host: 'console.test:8080' });
  });
  afterEach(() => {
    vi.useRealTimers();
    vi.unstubAllGlobals();
  });

  it('sends the token as a subprotocol, never in the URL, and delivers messages once ready', async () => {
    const { feed, sockets, statuses, messages, resumes } = setup();
    feed.start();
    await settle();
    expect(sockets[0]!.url).toBe('ws://console.test:8080/api/v1/stream');
    expect(sockets[0]!.protocols).toEqual(['bearer', 'tok-1']);
    sockets[0]!.ready();
    expect(statuses.at(-1)!.state).toBe('live');
    sockets[0]!.send('usage.decided', { records: [] });
    expect(messages).toEqual([{ type: 'usage.decided', data: { records: [] } }]);
    expect(resumes()).toBe(0);
  });

  it('retries with doubling delays up to 30 s, resets them once connected, and resumes after a reconnection', async () => {
    const { feed, sockets, statuses, resumes } = setup();
    feed.start();
    await settle();
    sockets[0]!.ready();
    const delays: number[] = [];
    for (let i = 0; i < 8; i++) {
      sockets.at(-1)!.drop(1006);
      const s = statuses.at(-1)!;
      expect(s.state).toBe('waiting');
      const delay = s.state === 'waiting' ? s.retryAt - Date.now() : 0;
      delays.push(delay);
      await vi.advanceTimersByTimeAsync(delay);
    }
    expect(delays).toEqual([500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]);
    expect(sockets).toHaveLength(9);
    sockets.at(-1)!.ready();
    expect(resumes()).toBe(1);
    sockets.at(-1)!.drop(1013);
    const s = statuses.at(-1)!;
    expect(s.state === 'waiting' && s.retryAt - Date.now()).toBe(500);
  });

  it('refreshes the token before reconnecting when the server says it expired (4401)', async () => {
    const { feed, sockets, session } = setup();
    feed.start();
    await settle();
    sockets[0]!.ready();
    session.accessToken.mockResolvedValue('tok-2');
    sockets[0]!.drop(4401);
    await settle();
    expect(session.refresh).toHaveBeenCalledTimes(1);
    await settle();
    expect(sockets).toHaveLength(2);
    expect(sockets[1]!.protocols).toEqual(['bearer', 'tok-2']);
  });

  it('backs off when the server refuses the renewed token too (4401 again before ready)', async () => {
    const { feed, sockets, statuses, session } = setup();
    feed.start();
    await settle();
    // The first 4401 reconnects at once with the renewed token.
    sockets[0]!.drop(4401);
    await settle();
    await settle();
    expect(sockets).toHaveLength(2);
    // Every later one in a row waits out the backoff, doubling as for any failed attempt.
    const delays: number[] = [];
    for (let i = 0; i < 3; i++) {
      sockets.at(-1)!.drop(4401);
      await settle();
      const s = statuses.at(-1)!;
      expect(s.state).toBe('waiting');
      const delay = s.state === 'waiting' ? s.retryAt - Date.now() : 0;
      delays.push(delay);
      await vi.advanceTimersByTimeAsync(delay);
    }
    expect(delays).toEqual([2000, 4000, 8000]);
    expect(session.refresh).toHaveBeenCalledTimes(4);
    // A connection that became ready starts the count again.
    sockets.at(-1)!.ready();
    sockets.at(-1)!.drop(4401);
    await settle();
    await settle();
    expect(sockets).toHaveLength(6);
  });

  it('never leaves a second socket open when "reconnect now" or a restart races a token wait', async () => {
    const open = (sockets: ScriptedSocket[]) => sockets.filter((s) => s.closed === null && s.readyState !== 3);

    // Reconnect now (and stop, start) while the first attempt still waits for its token.
    const waiting = setup();
    let grant: (token: string) => void = () => undefined;
    waiting.session.accessToken.mockImplementation(() => new Promise<string>((resolve) => (grant = resolve)));
    waiting.feed.start();
    const first = grant;
    waiting.feed.reconnectNow();
    waiting.feed.stop();
    waiting.feed.start();
    first('tok-1');
    grant('tok-2');
    await settle();
    expect(open(waiting.sockets).map((s) => s.protocols)).toEqual([['bearer', 'tok-2']]);

    // Reconnect now while the refresh after a 4401 is in flight.
    const refreshing = setup();
    refreshing.feed.start();
    await settle();
    refreshing.sockets[0]!.ready();
    let renewed: () => void = () => undefined;
    refreshing.session.refresh.mockImplementation(() => new Promise<undefined>((resolve) => (renewed = () => resolve(undefined))));
    refreshing.sockets[0]!.drop(4401);
    refreshing.feed.reconnectNow();
    await settle();
    renewed();
    await settle();
    expect(open(refreshing.sockets)).toHaveLength(1);
    expect(refreshing.sockets).toHaveLength(2);
  });

  it('stops for good when the account may not have a feed (4403), and when stopped', async () => {
    const { feed, sockets, statuses } = setup();
    feed.start();
    await settle();
    sockets[0]!.drop(4403);
    expect(statuses.at(-1)!.state).toBe('stopped');
    await vi.advanceTimersByTimeAsync(60_000);
    expect(sockets).toHaveLength(1);

    const other = setup();
    other.feed.start();
    await settle();
    other.sockets[0]!.ready();
    other.feed.stop();
    expect(other.sockets[0]!.closed).toBe(1000);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(other.sockets).toHaveLength(1);
  });

  it('spreads retries with full jitter, never below half the minimum', () => {
    expect(backoffDelay(1, 500, 30_000, () => 0)).toBe(250);
    expect(backoffDelay(3, 500, 30_000, () => 0.5)).toBe(1000);
    expect(backoffDelay(20, 500, 30_000, () => 1)).toBe(30_000);
  });
});
