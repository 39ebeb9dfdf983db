/**
 * Serves the web console (web/) at `/`: the page, `/console/app.js` and `/console/app.css`, built
 * once per app on the first request (api/console-bundle.ts) and kept in memory, gzipped when the
 * browser accepts it. Everything comes from the package: no CDN, fonts or map tiles.
 *
 * Every console response carries a strict Content-Security-Policy: scripts, styles and
 * connections (REST and the WebSocket feeds) only from this origin, no inline script or style
 * element, no framing, no plugins, no form posts. The console keeps tokens out of URLs (the feeds
 * get theirs through the WebSocket subprotocol), so nothing here ever sees one.
 *
 * If the bundle cannot be built (sources missing from the install, a syntax error) the console
 * answers a plain 503 page saying why; the API is unaffected.
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { projectPath } from '../shared/project-root.js';
import { CONSOLE_PATHS, buildConsoleBundle, type ConsoleBundle } from './console-bundle.js';

export interface ConsoleOptions {
  /** The console's sources (default: web/ of this package). */
  webDir?: string;
  /** Builds the bundle (default: esbuild over `webDir`); tests inject one that fails. */
  build?: (webDir: string) => Promise<ConsoleBundle>;
}

/** web/ ships beside the code (sources or dist/): the console is bundled from it at run time. */
export function defaultWebDir(): string {
  return projectPath('web');
}

export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  // data: for the page's empty favicon and uPlot's canvas exports.
  "img-src 'self' data:",
  // 'self' covers ws:/wss: to this host and port in CSP Level 3 browsers; listed explicitly below
  // would need the host name, which the server does not know behind a proxy.
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "object-src 'none'",
].join('; ');

const SECURITY_HEADERS = {
  'content-security-policy': CONSOLE_CSP,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'permissions-policy': 'camera=(), microphone=(), geolocation=(), payment=(), usb=()',
} as const;

function acceptsGzip(header: string | undefined): boolean {
  if (!header) return false;
  return header.split(',').some((part) => {
    const [coding, ...params] = part.trim().toLowerCase().split(';');
    if (coding !== 'gzip' && coding !== '*') return false;
    const q = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    return q === undefined || Number(q.slice(2)) > 0;
  });
}

const escapeHtml = (s: string): string =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

function unavailable(reply: FastifyReply, path: string, reason: string): FastifyReply {
  reply.code(503).headers(SECURITY_HEADERS).header('cache-control', 'no-store').header('retry-after', '60');
  if (path !== CONSOLE_PATHS.page) return reply.type('text/plain; charset=utf-8').send(`console unavailable: ${reason}\n`);
  return reply.type('text/html; charset=utf-8').send(
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>EdgePlane console unavailable</title></head>' +
      '<body><h1>The EdgePlane console is unavailable</h1>' +
      `<p>Its bundle could not be built: <code>${escapeHtml(reason)}</code></p>` +
      '<p>The API is unaffected: see <a href="/docs">/docs</a>. Reinstall the package (the console sources are in ' +
      '<code>web/</code>) and restart the server.</p></body></html>',
  );
}

export const consolePlugin: FastifyPluginAsync<ConsoleOptions> = async (app, opts) => {
  const webDir = opts.webDir ?? defaultWebDir();
  const buildBundle = opts.build ?? buildConsoleBundle;
  // Built on first use, once: every later request (and every concurrent first one) shares it. A
  // failed build is not retried: the sources do not change under a running process.
  let bundle: Promise<ConsoleBundle> | null = null;
  const getBundle = (): Promise<ConsoleBundle> => {
    bundle ??= buildBundle(webDir).catch((err: unknown) => {
      app.log.error({ err, webDir }, 'console bundle could not be built');
      throw err;
    });
    return bundle;
  };

  const serve = (path: string) => async (request: FastifyRequest, reply: FastifyReply) => {
    let built: ConsoleBundle;
    try {
      built = await getBundle();
    } catch (err) {
      const reason = (err instanceof Error ? err.message : String(err)).split('\n')[0]!.slice(0, 300);
      return unavailable(reply, path, reason);
    }
    const f = built.files.get(path);
    if (!f) return unavailable(reply, path, `${path} is not part of the bundle`);
    reply
      .headers(SECURITY_HEADERS)
      // Revalidated on every load (the ETag answers 304), so a new release is picked up at once.
      .header('cache-control', 'no-cache')
      .header('vary', 'accept-encoding')
      .type(f.contentType);
    if (acceptsGzip(request.headers['accept-encoding'])) return reply.header('content-encoding', 'gzip').send(f.gzip);
    return reply.send(f.body);
  };

  for (const path of Object.values(CONSOLE_PATHS)) {
    app.get(path, { config: { public: true }, schema: { hide: true } }, serve(path));
  }
};
