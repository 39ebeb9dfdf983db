/**
 * Closing an HTTPS API: a request already received is still answered, while connections with no
 * request (a finished handshake and silence, or a handshake never finished) are cut so they cannot
 * hold the stop. Over HTTPS the requests live on the TLSSocket, not on the TCP socket the server's
 * 'connection' event reports: tracking the TCP socket cut every HTTPS request in flight at close.
 * Real TLS on 127.0.0.1, certificate made with openssl.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { request } from 'node:https';
import { connect as tcpConnect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeSelfSignedCertificate, type TestCertificate } from '../test/support/tls.js';
import { closeUnfinishedRequestsOnClose } from './http-server-limits.js';

const probeDir = await mkdtemp(join(tmpdir(), 'edgeplane-https-close-probe-'));
const opensslAvailable = (await makeSelfSignedCertificate(probeDir)) !== null;
await rm(probeDir, { recursive: true, force: true });
if (!opensslAvailable && process.env.CI !== 'true') console.warn('api/http-server-limits.test.ts skipped: openssl is not installed (apt-get install -y openssl)');

let dir: string;
let cert: TestCertificate;

describe.skipIf(!opensslAvailable && process.env.CI !== 'true')('closing an HTTPS API', () => {
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgeplane-https-close-'));
    const made = await makeSelfSignedCertificate(dir);
    if (!made) throw new Error('openssl is required under CI=true (apt-get install -y openssl)');
    cert = made;
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('answers the request in flight and cuts the silent and half-handshaken connections', async () => {
    const app: FastifyInstance = Fastify({ https: { cert: cert.cert, key: await readFile(cert.keyFile) } });
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let arrived!: () => void;
    const arrivedP = new Promise<void>((r) => (arrived = r));
    app.get('/slow', async () => {
      arrived();
      await released;
      return { ok: true };
    });
    closeUnfinishedRequestsOnClose(app);
    await app.listen({ port: 0, host: '127.0.0.1' });
    const port = (app.server.address() as AddressInfo).port;

    const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/slow', ca: cert.cert, servername: 'localhost', agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end();
    });
    await arrivedP;
    // A client that finished its handshake and says nothing, and one that never starts it.
    const silentTls = tlsConnect({ host: '127.0.0.1', port, ca: cert.cert, servername: 'localhost' });
    await new Promise<void>((r) => silentTls.once('secureConnect', () => r()));
    const silentClosed = new Promise<void>((r) => silentTls.once('close', () => r()));
    silentTls.on('error', () => {});
    const rawTcp = tcpConnect(port, '127.0.0.1');
    await new Promise<void>((r) => rawTcp.once('connect', () => r()));
    const rawClosed = new Promise<void>((r) => rawTcp.once('close', () => r()));
    rawTcp.on('error', () => {});

    const closed = app.close();
    await Promise.all([silentClosed, rawClosed]);
    release();
    expect(await answer).toEqual({ status: 200, body: '{"ok":true}' });
    await closed;
  });
});
