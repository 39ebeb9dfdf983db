/**
 * The live feeds carry other permissions' records: `/ws/alerts` alerts and remediations,
 * `/api/v1/stream` decided usage. Both needed only `feeds:read`, so an API key scoped to it alone
 * read alerts, remediation commands and every usage record its scopes do not cover. Now each also
 * needs the permission of what it carries, refused before the handshake. Real listening server,
 * real `ws` clients, real API keys.
 */
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { OPERATOR_EMAIL, createTenant, login, post, startHarness, type Harness, type Session } from './test-support.js';

let h: Harness;
let base: string;
let owner: Session;

async function keyWith(scopes: string[]): Promise<string> {
  return (await post<{ key: string }>(h.app, owner, '/api/v1/api-keys', { name: `key ${scopes.join(' ')}`, scopes })).key;
}

/** The upgrade's outcome: 101 once the feed said 'ready', else the refusal's status and body. */
function upgrade(path: string, credential: string): Promise<{ status: number; body: string }> {
  const ws = new WebSocket(`${base}${path}`, ['bearer', credential]);
  ws.on('error', () => {});
  return new Promise((resolve) => {
    ws.once('message', (data: Buffer) => {
      ws.close();
      resolve({ status: 101, body: data.toString('utf8') });
    });
    ws.once('unexpected-response', (req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        req.destroy();
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') });
      });
    });
  });
}

beforeAll(async () => {
  h = await startHarness();
  await h.app.listen({ host: '127.0.0.1', port: 0 });
  base = `ws://127.0.0.1:${(h.app.server.address() as AddressInfo).port}`;
  const operator = await login(h.app, OPERATOR_EMAIL);
  ({ owner } = await createTenant(h.app, operator, 'FeedPerms'));
});
afterAll(async () => {
  await h?.close();
});

describe('feeds need the permission of what they carry', () => {
  it("refuses a feeds:read-only key the usage stream and the alerts feed, before the handshake", async () => {
    const key = await keyWith(['feeds:read']);
    const stream = await upgrade('/api/v1/stream', key);
    expect(stream.status, stream.body).toBe(403);
    expect(stream.body).toContain("'usage:read'");
    const alerts = await upgrade('/ws/alerts', key);
    expect(alerts.status, alerts.body).toBe(403);
    expect(alerts.body).toContain("'alerts:read' and 'remediation:read'");
    // Alerts without remediations is not enough: the alerts feed carries both.
    expect((await upgrade('/ws/alerts', await keyWith(['feeds:read', 'alerts:read']))).status).toBe(403);
  });

  it('opens them for a key holding those permissions too, and for a console user', async () => {
    const usageKey = await keyWith(['feeds:read', 'usage:read']);
    const alertsKey = await keyWith(['feeds:read', 'alerts:read', 'remediation:read']);
    for (const [path, credential] of [
      ['/api/v1/stream', usageKey],
      ['/ws/alerts', alertsKey],
      ['/api/v1/stream', owner.access],
      ['/ws/alerts', owner.access],
    ] as const) {
      const res = await upgrade(path, credential);
      expect(res.status, `${path}: ${res.body}`).toBe(101);
      expect(JSON.parse(res.body)).toMatchObject({ type: 'ready' });
    }
  });
});
