/**
 * Session's hold on this tab's stored refresh token, with the browser's fetch and sessionStorage
 * replaced at their boundary (the real sign-in, refresh and sign-out run in
 * test/e2e/console.test.ts): a refresh still in flight when its session ends must not write its
 * token over the next sign-in's, an ended session must not spend the next session's token, and a
 * reload that meets an outage keeps the token (test/e2e/console-session.test.ts shows the page).
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Session } from './session';

const REFRESH_KEY = 'edgeplane.console.refresh';

function pair(n: number): Response {
  const body = { access_token: `access-${n}`, refresh_token: `refresh-${n}`, expires_in: 900, token_type: 'Bearer' };
  return new Response(JSON.stringify(body), { status: 200, headers: { 'content-type': 'application/json' } });
}

/** fetch answered by hand: each call waits until the test resolves it. */
function scriptedFetch() {
  const calls: Array<{ path: string; body: Record<string, unknown>; answer: (res: Response) => void }> = [];
  const fetch = vi.fn(
    (path: string, init: RequestInit) =>
      new Promise<Response>((resolve) => calls.push({ path, body: JSON.parse(String(init.body)) as Record<string, unknown>, answer: resolve })),
  );
  return { fetch, calls };
}

/** Lets pending promise callbacks run. */
const settle = () => vi.advanceTimersByTimeAsync(0);

describe('Session', () => {
  let storage: Map<string, string>;
  let calls: ReturnType<typeof scriptedFetch>['calls'];

  beforeEach(() => {
    vi.useFakeTimers();
    storage = new Map();
    vi.stubGlobal('sessionStorage', {
      getItem: (k: string) => storage.get(k) ?? null,
      setItem: (k: string, v: string) => void storage.set(k, v),
      removeItem: (k: string) => void storage.delete(k),
      clear: () => storage.clear(),
    });
    const scripted = scriptedFetch();
    calls = scripted.calls;
    vi.stubGlobal('fetch', scripted.fetch);
  });
  afterEach(() => {
    vi.useRealTimers();
    vi.unstubAllGlobals();
  });

  async function signIn(n: number): Promise<Session> {
    const signing = Session.login('ops@example.test', 'secret');
    await settle();
    calls.at(-1)!.answer(pair(n));
    return signing;
  }

  it('drops a refresh answered after its session ended, leaving the next sign-in its token', async () => {
    const first = await signIn(1);
    expect(storage.get(REFRESH_KEY)).toBe('refresh-1');
    const refreshing = first.refresh();
    const outcome = refreshing.then(
      () => 'resolved',
      (err: Error) => err.message,
    );
    await settle();
    expect(calls.at(-1)!.body).toEqual({ refresh_token: 'refresh-1' });
    const inFlight = calls.at(-1)!;

    first.end('Your session ended: please sign in again.');
    expect(storage.has(REFRESH_KEY)).toBe(false);
    await signIn(2);
    expect(storage.get(REFRESH_KEY)).toBe('refresh-2');

    inFlight.answer(pair(3));
    expect(await outcome).toBe('signed out');
    expect(storage.get(REFRESH_KEY)).toBe('refresh-2');
  });

  it('keeps the stored token when a reload meets an outage or a rate limit, drops it when refused', async () => {
    for (const status of [503, 429]) {
      storage.set(REFRESH_KEY, 'refresh-1');
      const restoring = Session.restore();
      const outcome = restoring.then(
        () => 'resolved',
        (err: { status: number }) => err.status,
      );
      await settle();
      calls.at(-1)!.answer(new Response(JSON.stringify({ error: { code: 'UNAVAILABLE', message: 'busy' } }), { status }));
      expect(await outcome).toBe(status);
      expect(storage.get(REFRESH_KEY)).toBe('refresh-1');
    }

    const refused = Session.restore();
    await settle();
    calls.at(-1)!.answer(new Response(JSON.stringify({ error: { code: 'UNAUTHENTICATED', message: 'revoked' } }), { status: 401 }));
    expect(await refused).toBeNull();
    expect(storage.has(REFRESH_KEY)).toBe(false);
  });

  it('never spends the next session’s refresh token from an ended session', async () => {
    const first = await signIn(1);
    first.end('Signed out.');
    const second = await signIn(2);
    const sent = calls.length;

    const stale = first.refresh().then(
      () => 'resolved',
      (err: Error) => err.message,
    );
    await settle();
    expect(calls.length).toBe(sent);
    expect(await stale).toBe('signed out');
    expect(storage.get(REFRESH_KEY)).toBe('refresh-2');

    // The live session still refreshes as before.
    const refreshing = second.refresh();
    await settle();
    expect(calls.at(-1)!.body).toEqual({ refresh_token: 'refresh-2' });
    calls.at(-1)!.answer(pair(4));
    await refreshing;
    expect(storage.get(REFRESH_KEY)).toBe('refresh-4');
    expect(await second.accessToken()).toBe('access-4');
  });
});
