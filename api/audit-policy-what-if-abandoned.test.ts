/**
 * Audit: a what-if whose caller goes away before the replay starts (while the draft's references
 * and the stored tests are read: 20,000 lookups and 10 pages at most, seconds on a remote store)
 * must not replay the window for nobody. The close of the response was watched only from the
 * replay's start, so an earlier close went unseen: the whole window was replayed, holding the
 * tenant's what-if slot (429 for its next what-if) and a core for as long as it took.
 */
import { request as httpRequest, type ClientRequest } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo, Socket } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Store } from '../shared/store/port.js';
import { OPERATOR_EMAIL, createTenant, login, startHarness, type Harness, type Session } from './test-support.js';

let h: Harness;
let owner: Session;
/** Resolves with the error the what-if route ended with (the onError hook). */
let routeFailed: Promise<Error>;

beforeAll(async () => {
  let failed!: (err: Error) => void;
  routeFailed = new Promise((resolve) => (failed = resolve));
  h = await startHarness({
    beforeReady: (app) =>
      app.addHook('onError', async (request, _reply, err) => {
        if (request.url.startsWith('/api/v1/policies/what-if')) failed(err);
      }),
  });
  owner = (await createTenant(h.app, await login(h.app, OPERATOR_EMAIL), 'Acme')).owner;
  await h.app.listen({ host: '127.0.0.1', port: 0 });
});
afterAll(async () => {
  await h.close();
});

it('a caller gone before the replay starts stops it: no page of the window is read', async () => {
  const store: Store = h.store;
  // Hold the route while it reads the stored tests, until the caller is gone.
  let testsRead!: () => void;
  const reading = new Promise<void>((resolve) => (testsRead = resolve));
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const list = store.policyTests.list.bind(store.policyTests);
  store.policyTests.list = async (tenantId, opts) => {
    testsRead();
    await released;
    return list(tenantId, opts);
  };
  let scanned!: () => void;
  const scanStarted = new Promise<'scanned'>((resolve) => (scanned = () => resolve('scanned')));
  const scan = store.usageHistory.scan.bind(store.usageHistory);
  store.usageHistory.scan = async (...args) => {
    scanned();
    return scan(...args);
  };

  // The server's side of the caller's connection: its close is when the server sees the caller go.
  const serverSocket = new Promise<Socket>((resolve) => h.app.server.once('connection', resolve));
  const { port } = h.app.server.address() as AddressInfo;
  const body = JSON.stringify({ draft: { default_effect: 'deny' }, since: 0 });
  const req: ClientRequest = httpRequest({
    host: '127.0.0.1',
    port,
    method: 'POST',
    path: '/api/v1/policies/what-if',
    headers: { ...owner.headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
  });
  req.on('error', () => {});
  req.end(body);
  await reading;
  // The caller goes away, and the server has seen it, before the route goes on.
  const socket = await serverSocket;
  const closed = once(socket, 'close');
  req.destroy();
  await closed;
  release();

  const outcome = await Promise.race([scanStarted, routeFailed.then((err) => err.message)]);
  expect(outcome).toBe('client went away');
});
