/**
 * Audit: the webhook transport against hostile receivers, on real HTTP servers on 127.0.0.1 (so
 * private targets are allowed here; the address rules are webhook-targets.test.ts'): a redirect to
 * a private address is not followed, a receiver that trickles its headers forever or never answers
 * is given up at the attempt's timeout, and an endless body after a 2xx does not hold the attempt.
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createWebhookTransport } from './webhook-transport.js';

const servers: Server[] = [];
const timers: NodeJS.Timeout[] = [];

async function listen(handler: (res: ServerResponse, socket: Socket) => void): Promise<{ url: string; hits: () => number; closed: Promise<void> }> {
  let hits = 0;
  let closedResolve!: () => void;
  const closed = new Promise<void>((r) => (closedResolve = r));
  const server = createServer((req, res) => {
    hits++;
    req.resume();
    req.socket.on('close', () => closedResolve());
    handler(res, req.socket);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, hits: () => hits, closed };
}

afterEach(async () => {
  for (const t of timers.splice(0)) clearInterval(t);
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
});

const transport = createWebhookTransport({ allowPrivate: true });
const post = (url: string, timeoutMs = 200) => transport({ url, headers: { 'content-type': 'application/json' }, body: '{}', timeoutMs });

describe('webhook transport against hostile receivers', () => {
  it('does not follow a redirect (to a metadata address or anywhere else): the 3xx is the answer', async () => {
    const second = await listen((res) => res.end('ok'));
    const first = await listen((res) => {
      res.writeHead(307, { location: second.url });
      res.end();
    });
    await expect(post(first.url)).resolves.toEqual({ status: 307 });
    expect(second.hits()).toBe(0);
  });

  it('gives up a receiver that trickles its response headers forever (slowloris) at the timeout', async () => {
    const slow = await listen((_res, socket) => {
      socket.write('HTTP/1.1 200 OK\r\n');
      timers.push(setInterval(() => socket.write('x-a: b\r\n'), 20));
    });
    await expect(post(slow.url)).rejects.toMatchObject({ name: 'TimeoutError' });
    await slow.closed;
  });

  it('gives up a receiver that never answers at the timeout, and closes the connection', async () => {
    const silent = await listen(() => {});
    await expect(post(silent.url)).rejects.toMatchObject({ name: 'TimeoutError' });
    await silent.closed;
  });

  it('answers a 2xx followed by an endless body at once and closes the connection', async () => {
    const endless = await listen((res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      const chunk = Buffer.alloc(64 * 1024, 'x');
      timers.push(setInterval(() => res.write(chunk), 5));
    });
    await expect(post(endless.url, 60_000)).resolves.toEqual({ status: 200 });
    await endless.closed;
  });
});
