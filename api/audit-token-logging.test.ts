/**
 * Adversarial audit: a feed's access token may travel in the query string (`?access_token=`),
 * and the request log line must never carry it. The query parser decodes parameter names, so
 * `?access%5Ftoken=<jwt>` is the same parameter to the API (and authenticates a feed) as
 * `?access_token=`; the log redaction matched only the literal spelling and wrote such a token
 * in clear.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { redactQueryToken } from './feed-transport.js';
import { OPERATOR_EMAIL, createTenant, login, requestLogCapture, startHarness, type Harness, type Session } from './test-support.js';

let h: Harness;
let owner: Session;
// The harness logs nowhere: every request gets a logger this test can read. (Its hook runs after
// the guard, so the probes use a public route.)
const { lines, beforeReady } = requestLogCapture();

beforeAll(async () => {
  h = await startHarness({ beforeReady });
  const operator = await login(h.app, OPERATOR_EMAIL);
  ({ owner } = await createTenant(h.app, operator, 'Alpha'));
});
afterAll(async () => {
  await h.close();
});

describe('access tokens in the query string stay out of the request log', () => {
  it('whatever the spelling of the parameter name the API accepts', async () => {
    for (const name of ['access_token', 'access%5Ftoken', 'access%5ftoken', '%61ccess_token']) {
      lines.length = 0;
      const url = `/readyz?effect=deny&${name}=${owner.access}`;
      await h.app.inject({ method: 'GET', url });
      const logged = lines.join('');
      expect(logged, name).toContain('request completed');
      expect(logged, name).not.toContain(owner.access);
      expect(logged, name).toContain('effect=deny');
      expect(logged, name).toContain('[redacted]');
    }
  });

  it('an encoded parameter name opens a feed, and a refused upgrade with it logs no token', async () => {
    await h.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = h.app.server.address() as AddressInfo;
    lines.length = 0;
    const ws = new WebSocket(`ws://127.0.0.1:${port}/api/v1/stream?access%5Ftoken=${owner.access}`);
    const [data] = (await once(ws, 'message')) as [Buffer];
    expect(JSON.parse(data.toString('utf8'))).toMatchObject({ type: 'ready', data: { feed: 'stream' } });
    ws.close();
    await once(ws, 'close');
    // A refused upgrade (here a bad filter) is answered over HTTP and logged like any request.
    lines.length = 0;
    const bad = new WebSocket(`ws://127.0.0.1:${port}/api/v1/stream?effect=bogus&access%5Ftoken=${owner.access}`);
    bad.on('error', () => {});
    const [, res] = (await once(bad, 'unexpected-response')) as [unknown, { statusCode: number; resume(): void }];
    res.resume();
    expect(res.statusCode).toBe(400);
    await vi.waitFor(() => expect(lines.join('')).toContain('request completed'));
    expect(lines.join('')).not.toContain(owner.access);
  });

  it('redactQueryToken leaves other parameters and malformed escapes as written', () => {
    expect(redactQueryToken('/api/v1/stream')).toBe('/api/v1/stream');
    expect(redactQueryToken('/x?a=1&access_token=s3cret&b=%ZZ')).toBe('/x?a=1&access_token=[redacted]&b=%ZZ');
    expect(redactQueryToken('/x?access%5Ftoken=s3cret')).toBe('/x?access%5Ftoken=[redacted]');
    expect(redactQueryToken('/x?access_token')).toBe('/x?access_token=[redacted]');
    expect(redactQueryToken('/x?%ZZ=1&device_id=d')).toBe('/x?%ZZ=1&device_id=d');
  });
});
