/**
 * The listening server's bounds on slow and numerous clients. Fastify 5 leaves Node's
 * `requestTimeout` and the socket idle timeout at 0 (off) and caps no connection count: a client
 * that sent its headers but never its body, or stopped reading an answer, held its connection (and
 * whatever its handler held) forever, and any number of them could be open.
 *
 * - `requestTimeout` = `headersTimeout` = `--http-request-timeout-ms`: a whole request, headers
 *   included, must arrive within it, however slowly it trickles (Slowloris); Node answers 408 and
 *   closes. Node looks for late requests every `connectionsCheckingInterval` (30 s by default), so
 *   the interval follows the timeout.
 * - `connectionTimeout` (socket idle) = `--http-idle-timeout-ms`: nothing received or sent, mid
 *   request or mid answer. Upgraded WebSockets are exempt (ws clears the socket timeout); the feed
 *   hub's heartbeat and send-buffer cap bound them (api/feeds.ts).
 * - `maxConnections` = `--http-max-connections`: Node closes connections beyond it as it accepts
 *   them ('drop'), counted in `http_connections_refused_total`. Upgraded feed sockets count too.
 * Between requests, Fastify's keep-alive timeout (72 s) closes an idle connection.
 *
 * On close, Node stops checking request deadlines and waits for every connection that is not idle
 * between requests: one that never sent a byte, or trickles its headers or body, held the API's
 * stop (and every component stopping after it) until the process's shutdown timeout killed it.
 * `closeUnfinishedRequestsOnClose` cuts those; requests already received are still answered.
 */
import type { FastifyInstance } from 'fastify';
import { STATUS_CODES, type IncomingMessage, type Server as HttpServer, type ServerOptions as HttpServerOptions, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Server as TlsServer } from 'node:tls';
import { connectionKey } from '../shared/net/connection-key.js';
import type { ServerOptions as HttpsServerOptions } from 'node:https';
import type { Counters } from '../shared/metrics.js';

export interface HttpServerLimits {
  requestTimeoutMs: number;
  idleTimeoutMs: number;
  maxConnections: number;
}

/** The CLI's defaults (shared/config.ts), for apps built without them (tests). */
export const DEFAULT_HTTP_SERVER_LIMITS: HttpServerLimits = {
  requestTimeoutMs: 60_000,
  idleTimeoutMs: 120_000,
  maxConnections: 10_000,
};

export const HTTP_CONNECTIONS_REFUSED_COUNTER = 'http_connections_refused_total';

/** Node's own deadline options, for `http.createServer` / `https.createServer`. */
export function nodeServerTimeouts(limits: HttpServerLimits): Pick<HttpServerOptions, 'requestTimeout' | 'headersTimeout' | 'connectionsCheckingInterval'> {
  return {
    requestTimeout: limits.requestTimeoutMs,
    headersTimeout: limits.requestTimeoutMs,
    // A late request is found within a quarter of the timeout; never checked more often than 10 ms.
    connectionsCheckingInterval: Math.min(30_000, Math.max(10, Math.floor(limits.requestTimeoutMs / 4))),
  };
}

/** Fastify's options carrying the limits, with the HTTPS material when the API serves TLS. */
export function fastifyServerOptions(
  limits: HttpServerLimits,
  https: HttpsServerOptions | undefined,
): { requestTimeout: number; connectionTimeout: number; clientErrorHandler: typeof clientErrorHandler } & ({ https: HttpsServerOptions } | { http: HttpServerOptions }) {
  const timeouts = nodeServerTimeouts(limits);
  return {
    clientErrorHandler,
    // Fastify sets these on the server after creating it (0 would switch them off again).
    requestTimeout: limits.requestTimeoutMs,
    connectionTimeout: limits.idleTimeoutMs,
    ...(https ? { https: { ...https, ...timeouts } } : { http: timeouts }),
  };
}

/**
 * Answers a request Node's parser refused before Fastify saw it (a late or malformed request,
 * headers over the limit) in the API's error shape, `{"error":{"code","message"}}`, instead of
 * Fastify's default body; then closes the connection, as Node does. A reset connection gets
 * nothing. Fastify's `clientErrorHandler` option (`this` is the instance).
 */
export function clientErrorHandler(this: FastifyInstance, err: Error & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, code, message] =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? [408, 'REQUEST_TIMEOUT', 'the request did not arrive whole in time']
      : err.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'HEADERS_TOO_LARGE', 'the request line or headers are too large']
        : [400, 'BAD_REQUEST', 'malformed HTTP request'];
  this.log.trace({ err }, 'http client error');
  if (socket.writable) {
    const body = JSON.stringify({ error: { code, message } });
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(err);
}

/** Caps the open connections of `server` and counts those closed on accept. */
export function capConnections(server: HttpServer, limits: HttpServerLimits, counters: Counters): void {
  server.maxConnections = limits.maxConnections;
  server.on('drop', () => counters.inc(HTTP_CONNECTIONS_REFUSED_COUNTER));
}

/**
 * At close, destroys the connections whose request has not fully arrived (none yet, headers or
 * body still coming) or that sit between requests; a received request in flight keeps its
 * connection until answered (Fastify answers later ones 503). Upgraded feed sockets are left to
 * the feed hub, which closes them with 1001.
 */
export function closeUnfinishedRequestsOnClose(app: FastifyInstance): void {
  const open = new Set<Socket>();
  const upgraded = new WeakSet<Socket>();
  const inFlight = new WeakMap<Socket, IncomingMessage>();
  const track = (socket: Socket): void => {
    open.add(socket);
    socket.once('close', () => open.delete(socket));
  };
  if (app.server instanceof TlsServer) {
    // HTTPS: requests and upgrades come on the TLSSocket, not on the TCP socket 'connection'
    // reports, so the TLSSocket is what is tracked. A TCP socket whose handshake has not finished
    // has no request at all: it is cut at close like a silent one. The two are matched by
    // `connectionKey` (shared/net/connection-key.ts).
    const handshaking = new Map<string, Socket>();
    app.server.on('connection', (raw: Socket) => {
      const key = connectionKey(raw);
      handshaking.set(key, raw);
      raw.once('close', () => {
        if (handshaking.get(key) === raw) handshaking.delete(key);
      });
    });
    app.server.on('secureConnection', (socket: Socket) => {
      handshaking.delete(connectionKey(socket));
      track(socket);
    });
    app.addHook('preClose', async () => {
      for (const raw of handshaking.values()) raw.destroy();
    });
  } else {
    app.server.on('connection', track);
  }
  app.server.on('upgrade', (_request: IncomingMessage, socket: Socket) => upgraded.add(socket));
  app.server.on('request', (request: IncomingMessage, response: ServerResponse) => {
    const socket = request.socket;
    inFlight.set(socket, request);
    const done = (): void => {
      if (inFlight.get(socket) === request) inFlight.delete(socket);
    };
    response.once('finish', done);
    response.once('close', done);
  });
  app.addHook('preClose', async () => {
    for (const socket of open) {
      if (upgraded.has(socket)) continue;
      const request = inFlight.get(socket);
      if (request === undefined || !request.complete) socket.destroy();
    }
  });
}
