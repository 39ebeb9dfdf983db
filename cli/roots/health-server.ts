/**
 * The broker and worker roles' own small HTTP listener (the api role has the API's): liveness,
 * readiness (200 only while every connection the role needs is up) and its metrics for
 * Prometheus. Bind it to an internal interface; it carries no tenant data. With a metrics token
 * configured, /metrics answers only `Authorization: Bearer <token>`.
 *
 * Its clients are probes and scrapers, so it is bounded tightly: a request must arrive whole
 * within 10 s (Node answers 408 and closes; its default is 300 s, headers 60 s), a connection with
 * nothing moving for 30 s is closed, and at most 256 are open (more are closed on accept).
 */
import { createServer, type Server } from 'node:http';
import { nodeServerTimeouts } from '../../api/http-server-limits.js';
import type { AddressInfo } from 'node:net';
import type { Counters } from '../../shared/metrics.js';
import { bearerMatches } from '../../shared/metrics-token.js';

export interface HealthServerOptions {
  host: string;
  port: number;
  role: string;
  counters: Counters;
  /** When set, /metrics requires it as a bearer token. */
  metricsToken?: string;
  readiness: () => Promise<Record<string, boolean>>;
  /** A request must arrive whole within this (default 10 s). */
  requestTimeoutMs?: number;
  /** A connection with nothing received or sent for this long is closed (default 30 s). */
  idleTimeoutMs?: number;
  /** Open connections at most; more are closed on accept (default 256). */
  maxConnections?: number;
}

export class HealthServer {
  readonly #o: HealthServerOptions;
  #server: Server | null = null;

  constructor(opts: HealthServerOptions) {
    this.#o = opts;
  }

  get port(): number {
    return (this.#server?.address() as AddressInfo | null)?.port ?? 0;
  }

  /** Connections open now (for tests and diagnostics). */
  openConnections(): Promise<number> {
    const s = this.#server;
    if (!s) return Promise.resolve(0);
    return new Promise((resolve, reject) => s.getConnections((err, n) => (err ? reject(err) : resolve(n))));
  }

  async start(): Promise<void> {
    const limits = {
      requestTimeoutMs: this.#o.requestTimeoutMs ?? 10_000,
      idleTimeoutMs: this.#o.idleTimeoutMs ?? 30_000,
      maxConnections: this.#o.maxConnections ?? 256,
    };
    // The API's own bounds on slow and numerous clients (api/http-server-limits.ts), tighter.
    const server = createServer(
      nodeServerTimeouts(limits),
      (req, res) => {
        const path = (req.url ?? '').split('?')[0];
        const json = (status: number, body: unknown) => {
          res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
        };
        if (req.method !== 'GET') return json(405, { error: { code: 'METHOD_NOT_ALLOWED', message: 'GET only' } });
        if (path === '/healthz') return json(200, { status: 'ok', role: this.#o.role });
        if (path === '/readyz') {
          this.#o.readiness().then(
            (checks) => {
              const ok = Object.values(checks).every(Boolean);
              json(ok ? 200 : 503, { status: ok ? 'ready' : 'unavailable', role: this.#o.role, checks });
            },
            () => json(503, { status: 'unavailable', role: this.#o.role, checks: {} }),
          );
          return;
        }
        if (path === '/metrics') {
          const token = this.#o.metricsToken;
          if (token !== undefined && !bearerMatches(req.headers.authorization, token)) {
            res.setHeader('www-authenticate', 'Bearer realm="metrics"');
            return json(401, { error: { code: 'UNAUTHENTICATED', message: 'GET /metrics needs the metrics token: Authorization: Bearer <--metrics-token>' } });
          }
          const counters = this.#o.counters;
          counters.metrics().then(
            (text) => res.writeHead(200, { 'content-type': counters.contentType }).end(text),
            () => json(500, { error: { code: 'INTERNAL', message: 'metrics collection failed' } }),
          );
          return;
        }
        json(404, { error: { code: 'NOT_FOUND', message: 'try /healthz, /readyz or /metrics' } });
      },
    );
    server.maxConnections = limits.maxConnections;
    server.setTimeout(limits.idleTimeoutMs, (socket) => socket.destroy());
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#o.port, this.#o.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  }

  async stop(): Promise<void> {
    const s = this.#server;
    this.#server = null;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}
