/**
 * The web console as the API serves it: the page and its two files, their security headers (and
 * the API explorer's at /docs), gzip and revalidation, the size budget (printed), exemption from
 * the per-address request limit, and the 503 page when the bundle cannot be built.
 */
import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { CONSOLE_CSP, consolePlugin } from './console.js';
import { CONSOLE_BUDGET_GZIP_BYTES, CONSOLE_PATHS, buildConsoleBundle } from './console-bundle.js';
import { defaultWebDir } from './console.js';
import { startHarness, type Harness } from './test-support.js';

describe('the console bundle', () => {
  it('fits its size budget (printed)', async () => {
    const bundle = await buildConsoleBundle(defaultWebDir());
    const kb = (n: number) => `${(n / 1024).toFixed(1)} KB`;
    console.log(
      `console bundle: JS + CSS ${kb(bundle.size.raw)} minified, ${kb(bundle.size.gzip)} gzipped ` +
        `(budget ${kb(CONSOLE_BUDGET_GZIP_BYTES)} gzipped: ${((100 * bundle.size.gzip) / CONSOLE_BUDGET_GZIP_BYTES).toFixed(0)} % used)`,
    );
    expect(bundle.size.gzip).toBeLessThanOrEqual(CONSOLE_BUDGET_GZIP_BYTES);
    const page = bundle.files.get(CONSOLE_PATHS.page)!.body.toString('utf8');
    // No inline script or style and no handler attributes: the CSP forbids them, so none may be needed.
    expect(page.match(/<script\b[^>]*>/g)).toEqual(['<script type="module" src="/console/app.js">']);
    expect(page).not.toMatch(/<style\b|\son[a-z]+=|javascript:/i);
    // Everything comes from this origin: no CDN, font or tile server.
    expect(page).not.toMatch(/https?:\/\//);
  });

  it('ships in the Docker image (its sources are built in the running process)', async () => {
    const dockerfile = await readFile(new URL('../Dockerfile', import.meta.url), 'utf8');
    expect(dockerfile).toMatch(/^COPY web \.\/web$/m);
  });
});

describe('the console served by the API', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ rateLimitPerMin: 2 });
  });
  afterAll(() => h.close());

  it('serves the page at / with a strict CSP and no framing', async () => {
    const res = await h.app.inject({ url: '/' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(res.body).toContain('<main id="app">');
    const csp = String(res.headers['content-security-policy']);
    expect(csp).toBe(CONSOLE_CSP);
    for (const directive of ["default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"]) {
      expect(csp).toContain(directive);
    }
    expect(csp).not.toMatch(/unsafe-inline|unsafe-eval|\*/);
    expect(res.headers['x-frame-options']).toBe('DENY');
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['referrer-policy']).toBe('no-referrer');
    expect(res.headers['cache-control']).toBe('no-cache');
  });

  it('serves the script and stylesheet, gzipped when accepted, revalidated by ETag', async () => {
    const plain = await h.app.inject({ url: CONSOLE_PATHS.script });
    expect(plain.statusCode).toBe(200);
    expect(plain.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(plain.headers['content-encoding']).toBeUndefined();
    const zipped = await h.app.inject({ url: CONSOLE_PATHS.script, headers: { 'accept-encoding': 'gzip, deflate, br' } });
    expect(zipped.headers['content-encoding']).toBe('gzip');
    expect(zipped.headers.vary).toContain('accept-encoding');
    expect(gunzipSync(zipped.rawPayload).toString('utf8')).toBe(plain.body);
    const refused = await h.app.inject({ url: CONSOLE_PATHS.script, headers: { 'accept-encoding': 'gzip;q=0' } });
    expect(refused.headers['content-encoding']).toBeUndefined();
    const etag = String(plain.headers.etag);
    const again = await h.app.inject({ url: CONSOLE_PATHS.script, headers: { 'if-none-match': etag } });
    expect(again.statusCode).toBe(304);
    const css = await h.app.inject({ url: CONSOLE_PATHS.style });
    expect(css.headers['content-type']).toBe('text/css; charset=utf-8');
    expect(css.body).toContain('.uplot');
  });

  it('gives the API explorer, its static files included, the console’s nosniff and referrer headers', async () => {
    for (const url of ['/docs/', '/docs/static/swagger-ui-bundle.js', '/docs/static/index.css', '/docs/static/no-such-file.js']) {
      const res = await h.app.inject({ url });
      expect([url, res.headers['x-content-type-options'], res.headers['referrer-policy'], res.headers['x-frame-options']]).toEqual([url, 'nosniff', 'no-referrer', 'DENY']);
    }
  });

  it('is outside the per-address request limit (an office behind one address reloads it often)', async () => {
    for (let i = 0; i < 6; i++) expect((await h.app.inject({ url: '/' })).statusCode).toBe(200);
    // The API itself is still limited for that address.
    const limited = [];
    for (let i = 0; i < 4; i++) limited.push((await h.app.inject({ method: 'POST', url: '/api/v1/auth/refresh', payload: { refresh_token: 'x' } })).statusCode);
    expect(limited).toContain(429);
  });

  it('keeps the console out of the OpenAPI document', async () => {
    const doc = (await h.app.inject({ url: '/docs/json' })).json<{ paths: Record<string, unknown> }>();
    expect(Object.keys(doc.paths).filter((p) => p === '/' || p.startsWith('/console'))).toEqual([]);
    expect(Object.keys(doc.paths)).toContain('/api/v1/dashboard/overview');
  });
});

describe('a console whose bundle cannot be built', () => {
  it('answers 503 pages saying why, builds once, and keeps serving everything else', async () => {
    let builds = 0;
    const app = Fastify();
    await app.register(consolePlugin, {
      build: async () => {
        builds++;
        throw new Error('Could not resolve "./main.tsx" <script>');
      },
    });
    app.get('/healthz', async () => ({ status: 'ok' }));
    const page = await app.inject({ url: '/' });
    expect(page.statusCode).toBe(503);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.headers['content-security-policy']).toBe(CONSOLE_CSP);
    expect(page.body).toContain('The EdgePlane console is unavailable');
    expect(page.body).toContain('Could not resolve &quot;./main.tsx&quot; &lt;script&gt;');
    expect(page.body).not.toContain('<script');
    const script = await app.inject({ url: CONSOLE_PATHS.script });
    expect(script.statusCode).toBe(503);
    expect(script.body).toMatch(/^console unavailable: /);
    expect((await app.inject({ url: '/healthz' })).statusCode).toBe(200);
    expect(builds).toBe(1);
    await app.close();
  });

  it('answers 503 when the sources are missing from the install', async () => {
    const app = Fastify({ logger: false });
    await app.register(consolePlugin, { webDir: '/nonexistent/edgeplane-web' });
    const page = await app.inject({ url: '/' });
    expect(page.statusCode).toBe(503);
    expect(page.body).toContain('could not be built');
    await app.close();
  });
});
