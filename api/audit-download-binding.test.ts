/**
 * A download link is bound to the browser that asked for it (api/download-tokens.ts): the POST
 * that issues it sets a cookie of its own, and the link redeems only with that cookie. A link that
 * leaked (a proxy log, history sync, a shared screen) is refused elsewhere exactly like an unknown
 * link, and the refusal takes nothing: the browser that asked can still download. Over real HTTP
 * and real HTTPS; the two-process race with Redis is in api/download-tokens.test.ts.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbedded, type EmbeddedHandle } from '../cli/embedded.js';
import { silentLogger } from '../shared/logger.js';
import { httpsJson, loopbackTlsConfig, makeSelfSignedCertificate, type TestCertificate } from '../test/support/tls.js';
import { seedUsage } from './seed-usage.js';
import { OPERATOR_EMAIL, PASSWORD, createTenant, json, login, startHarness, type Harness, type Session } from './test-support.js';

const EXPORT = { path: '/api/v1/app-usage', format: 'csv' };

interface Issued {
  url: string;
  /** `name=value`, as a browser sends it back. */
  cookie: string;
  /** The whole Set-Cookie line. */
  setCookie: string;
}

async function issue(h: Harness, session: Session, headers: Record<string, string> = {}, remoteAddress?: string): Promise<Issued> {
  const res = await h.app.inject({ method: 'POST', url: '/api/v1/downloads', headers: { ...session.headers, ...headers }, payload: EXPORT, ...(remoteAddress && { remoteAddress }) });
  expect(res.statusCode, res.body).toBe(201);
  const setCookie = res.headers['set-cookie'];
  expect(typeof setCookie).toBe('string');
  return { url: json<{ url: string }>(res).url, cookie: (setCookie as string).split(';')[0]!, setCookie: setCookie as string };
}

const open = (h: Harness, url: string, cookie?: string, remoteAddress?: string) =>
  h.app.inject({ method: 'GET', url, headers: cookie === undefined ? {} : { cookie }, ...(remoteAddress && { remoteAddress }) });

const errorOf = (res: { body: string }) => (JSON.parse(res.body) as { error: { code: string; message: string } }).error;

/** The Set-Cookie line's attributes, lower-cased names, in a map (flags map to ''). */
function attributes(setCookie: string): Map<string, string> {
  return new Map(
    setCookie
      .split(';')
      .slice(1)
      .map((part) => {
        const [name, ...value] = part.trim().split('=');
        return [name!.toLowerCase(), value.join('=')] as [string, string];
      }),
  );
}

describe('download links bound to the browser that asked for them', () => {
  let h: Harness;
  let owner: Session;

  beforeAll(async () => {
    h = await startHarness({ rateLimitPerMin: 1_000_000, trustProxy: ['10.0.0.1'] });
    const created = await createTenant(h.app, await login(h.app, OPERATOR_EMAIL), 'Bound');
    owner = created.owner;
    await seedUsage(h.store, created.tenantId, 'twr-1', [{ device_id: 'dev-bound', app: 'slack', action: 'x', effect: 'allow' }], h.clock.now);
  });
  afterAll(async () => {
    await h?.close();
  });

  it('sets a cookie of its own with the link: HttpOnly, SameSite=Strict, the downloads path, the link lifetime, no Secure over plain HTTP', async () => {
    const { url, cookie, setCookie } = await issue(h, owner);
    const [name, value] = cookie.split('=');
    expect(name).toMatch(/^epd_[A-Za-z0-9_-]{16}$/);
    expect(value).toMatch(/^[A-Za-z0-9_-]{43}$/);
    // Neither the token nor anything that redeems it is in the cookie.
    const token = url.split('/').pop()!;
    expect(setCookie).not.toContain(token.slice(4));
    const attrs = attributes(setCookie);
    expect(Object.fromEntries(attrs)).toEqual({ 'max-age': '60', path: '/api/v1/downloads', httponly: '', samesite: 'Strict' });
  });

  it('redeems with its cookie, once; without it, or with another browser’s, it is refused like an unknown link and still works afterwards', async () => {
    const mine = await issue(h, owner);
    const theirs = await issue(h, owner);
    const unknown = await open(h, '/api/v1/downloads/epd_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', mine.cookie);
    expect(unknown.statusCode).toBe(404);

    const bare = await open(h, mine.url);
    const otherBrowser = await open(h, mine.url, theirs.cookie);
    const renamed = await open(h, mine.url, `${mine.cookie.split('=')[0]}=${theirs.cookie.split('=')[1]}`);
    const guessed = await open(h, mine.url, `${mine.cookie.split('=')[0]}=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA`);
    for (const refused of [bare, otherBrowser, renamed, guessed]) {
      expect(refused.statusCode).toBe(404);
      // Word for word the answer to an unknown link: a refusal does not tell which it was.
      expect(refused.body).toBe(unknown.body);
      expect(refused.headers['set-cookie']).toBeUndefined();
    }
    // The answer tells a client that keeps no cookies what it is missing.
    expect(errorOf(bare)).toEqual({ code: 'NOT_FOUND', message: expect.stringContaining('without the cookie its POST /downloads set') });

    // None of the refusals spent the link: its browser downloads it, once, and the cookie is dropped.
    const ok = await open(h, mine.url, mine.cookie);
    expect(ok.statusCode, ok.body).toBe(200);
    expect(ok.body).toContain('dev-bound');
    expect(ok.body).not.toContain(mine.cookie.split('=')[1]);
    const cleared = ok.headers['set-cookie'] as string;
    expect(cleared.split(';')[0]).toBe(`${mine.cookie.split('=')[0]}=`);
    expect(attributes(cleared).get('max-age')).toBe('0');
    expect(attributes(cleared).get('path')).toBe('/api/v1/downloads');
    expect((await open(h, mine.url, mine.cookie)).statusCode).toBe(404);
    // The other browser's link was not touched either.
    expect((await open(h, theirs.url, theirs.cookie)).statusCode).toBe(200);
  });

  it('several links issued in a row by one browser all work, whichever is opened first, each with the whole jar sent', async () => {
    const links = [await issue(h, owner), await issue(h, owner), await issue(h, owner)];
    // One cookie per link: the second issue did not replace the first's.
    expect(new Set(links.map((l) => l.cookie.split('=')[0])).size).toBe(3);
    // A browser sends every cookie of the path with each download.
    const jar = links.map((l) => l.cookie).join('; ');
    for (const l of [links[2]!, links[0]!, links[1]!]) {
      const res = await open(h, l.url, jar);
      expect(res.statusCode, res.body).toBe(200);
    }
  });

  it('is Secure when a trusted proxy says the browser came over https, and not when anyone else says so', async () => {
    const proxied = await issue(h, owner, { 'x-forwarded-proto': 'https' }, '10.0.0.1');
    expect(attributes(proxied.setCookie).has('secure')).toBe(true);
    expect((await open(h, proxied.url, proxied.cookie, '10.0.0.1')).statusCode).toBe(200);
    const claimed = await issue(h, owner, { 'x-forwarded-proto': 'https' }, '203.0.113.7');
    expect(attributes(claimed.setCookie).has('secure')).toBe(false);
  });

  it('works for a script with a cookie jar over real HTTP, and refuses one without', async () => {
    await h.app.listen({ host: '127.0.0.1', port: 0 });
    const base = `http://127.0.0.1:${(h.app.server.address() as AddressInfo).port}`;
    const mint = async () => {
      const res = await fetch(`${base}/api/v1/downloads`, { method: 'POST', headers: { ...owner.headers, 'content-type': 'application/json' }, body: JSON.stringify(EXPORT) });
      expect(res.status).toBe(201);
      return { url: ((await res.json()) as { url: string }).url, cookies: res.headers.getSetCookie().map((c) => c.split(';')[0]!) };
    };
    const scripted = await mint();
    expect(scripted.cookies).toHaveLength(1);
    const withJar = await fetch(`${base}${scripted.url}`, { headers: { cookie: scripted.cookies.join('; ') } });
    expect(withJar.status).toBe(200);
    expect(await withJar.text()).toContain('dev-bound');

    const cookieless = await mint();
    const refused = await fetch(`${base}${cookieless.url}`);
    expect(refused.status).toBe(404);
    expect(((await refused.json()) as { error: { message: string } }).error.message).toContain('cookie');
  });
});

describe('probing a leaked link through its refusals', () => {
  let h: Harness;
  let owner: Session;
  const PER_MIN = 5;

  beforeAll(async () => {
    h = await startHarness({ rateLimitPerMin: PER_MIN });
    ({ owner } = await createTenant(h.app, await login(h.app, OPERATOR_EMAIL), 'Probed'));
  });
  afterAll(async () => {
    await h?.close();
  });

  it('is charged to the prober’s address: it runs into 429 within the minute, and the browser that asked still downloads', async () => {
    const leaked = await issue(h, owner);
    const name = leaked.cookie.split('=')[0]!;
    const statuses: number[] = [];
    for (let i = 0; i < PER_MIN + 3; i++) {
      const guess = `${name}=${'A'.repeat(42)}${String.fromCharCode(65 + i)}`;
      statuses.push((await open(h, leaked.url, guess, '198.51.100.23')).statusCode);
    }
    expect(statuses).toEqual([...Array<number>(PER_MIN).fill(404), 429, 429, 429]);
    const rightful = await open(h, leaked.url, leaked.cookie, '192.0.2.10');
    expect(rightful.statusCode, rightful.body).toBe(200);
  });
});

const probeDir = await mkdtemp(join(tmpdir(), 'edgeplane-download-tls-probe-'));
const opensslAvailable = (await makeSelfSignedCertificate(probeDir)) !== null;
await rm(probeDir, { recursive: true, force: true });
if (!opensslAvailable) console.warn('api/audit-download-binding.test.ts: the HTTPS case is skipped, openssl is not installed');

describe.skipIf(!opensslAvailable && process.env.CI !== 'true')('download link cookies over HTTPS', () => {
  const EMAIL = 'admin@download-tls.test';
  let dir: string;
  let cert: TestCertificate;
  let cp: EmbeddedHandle;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgeplane-download-tls-'));
    const made = await makeSelfSignedCertificate(dir);
    if (!made) throw new Error('openssl is required under CI=true (apt-get install -y openssl)');
    cert = made;
    cp = await startEmbedded(loopbackTlsConfig({ dataDir: join(dir, 'data'), certFile: cert.certFile, keyFile: cert.keyFile, email: EMAIL, password: PASSWORD }), {
      logger: silentLogger(),
    });
  });
  afterAll(async () => {
    await cp?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('marks the cookie Secure when the API serves TLS itself', async () => {
    const operator = await httpsJson<{ access_token: string }>('POST', `${cp.httpUrl}/api/v1/auth/login`, { ca: cert.cert, body: { email: EMAIL, password: PASSWORD } });
    const tenant = await httpsJson('POST', `${cp.httpUrl}/api/v1/tenants`, {
      ca: cert.cert,
      token: operator.body.access_token,
      body: { name: 'Tls', owner: { email: 'owner@tls-download.test', password: PASSWORD } },
    });
    expect(tenant.status).toBe(201);
    const owner = await httpsJson<{ access_token: string }>('POST', `${cp.httpUrl}/api/v1/auth/login`, { ca: cert.cert, body: { email: 'owner@tls-download.test', password: PASSWORD } });
    const setCookie = await new Promise<string[]>((resolve, reject) => {
      const req = httpsRequest(
        `${cp.httpUrl}/api/v1/downloads`,
        { method: 'POST', ca: cert.cert, headers: { 'content-type': 'application/json', authorization: `Bearer ${owner.body.access_token}` } },
        (res) => {
          expect(res.statusCode).toBe(201);
          res.resume();
          res.on('end', () => resolve(res.headers['set-cookie'] ?? []));
        },
      );
      req.on('error', reject);
      req.end(JSON.stringify(EXPORT));
    });
    expect(setCookie).toHaveLength(1);
    expect(Object.fromEntries(attributes(setCookie[0]!))).toEqual({ 'max-age': '60', path: '/api/v1/downloads', httponly: '', samesite: 'Strict', secure: '' });
  });
});
