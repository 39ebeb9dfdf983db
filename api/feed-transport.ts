/**
 * The feeds' Fastify wiring: @fastify/websocket, the hub (`app.feeds`), and the lift of a browser's
 * token into `Authorization` so the API's guard authenticates upgrade requests like any other.
 * Browsers cannot set `Authorization` on a WebSocket, so the token comes as
 * `Sec-WebSocket-Protocol: bearer, <token>` or `?access_token=`.
 */
import fastifyWebsocket from '@fastify/websocket';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { decodeJwt } from 'jose';
import { FEED_CLOSE, FeedHub, type FeedLimits } from './feeds.js';

const BEARER_PROTOCOL = 'bearer';

function offeredProtocols(header: string | string[] | undefined): string[] {
  const raw = Array.isArray(header) ? header.join(',') : (header ?? '');
  return raw
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p.length > 0);
}

/** The query parameter a feed's access token may travel in (browsers cannot set headers). */
const TOKEN_PARAM = 'access_token';

/**
 * `url` with the value of every `access_token` parameter replaced, for logs. Names are compared
 * decoded, as the query parser reads them (`access%5Ftoken` is `access_token` to the API).
 */
export function redactQueryToken(url: string): string {
  const q = url.indexOf('?');
  if (q < 0) return url;
  const pairs = url
    .slice(q + 1)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      const rawName = eq < 0 ? pair : pair.slice(0, eq);
      let name = rawName;
      try {
        name = decodeURIComponent(rawName.replace(/\+/g, ' '));
      } catch {
        // A malformed escape: compared as written.
      }
      return name.toLowerCase() === TOKEN_PARAM ? `${rawName}=[redacted]` : pair;
    });
  return `${url.slice(0, q + 1)}${pairs.join('&')}`;
}

/** The token an upgrade request carries where a browser can put one, or null. */
export function upgradeToken(request: FastifyRequest): string | null {
  const protocols = offeredProtocols(request.headers['sec-websocket-protocol']);
  const at = protocols.indexOf(BEARER_PROTOCOL);
  const fromProtocol = at >= 0 ? protocols[at + 1] : undefined;
  if (fromProtocol !== undefined) return fromProtocol;
  const query: unknown = request.query;
  if (typeof query === 'object' && query !== null && TOKEN_PARAM in query) {
    const token = query[TOKEN_PARAM];
    if (typeof token === 'string' && token.length > 0) return token;
  }
  return null;
}

/** When the access token in `Authorization` expires (epoch ms); null for tokens that are not JWTs. */
/** The bearer credential of the request (the feed's access token or API key), if any. */
export function bearerOf(request: FastifyRequest): string | undefined {
  return /^Bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? '')?.[1];
}

export function accessTokenExpiry(request: FastifyRequest): number | null {
  const token = bearerOf(request);
  if (token === undefined) return null;
  try {
    const { exp } = decodeJwt(token);
    return typeof exp === 'number' ? exp * 1000 : null;
  } catch {
    return null;
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    feeds: FeedHub;
  }
}

/**
 * Registers @fastify/websocket, the token lift and the hub (`app.feeds`). Call it BEFORE the
 * guard is registered: the lift is an onRequest hook and must run before the guard's.
 */
export async function registerFeedTransport(app: FastifyInstance, limits: Partial<FeedLimits> = {}): Promise<void> {
  const hub = new FeedHub({
    bus: app.bus,
    counters: app.counters,
    clock: app.clock,
    limits,
    onError: (err) => app.log.error({ err }, 'feed message could not be built, or a feed credential could not be checked again'),
    onRecheckRecovered: () => app.log.info({ event: 'feed_recheck_recovered' }, 'feed credentials checked again'),
  });
  await app.register(fastifyWebsocket, {
    options: {
      // Select 'bearer' and never echo the token back as the chosen subprotocol.
      handleProtocols: (protocols) => (protocols.has(BEARER_PROTOCOL) ? BEARER_PROTOCOL : false),
      // Feed clients only receive; a large inbound frame is a mistake or an attack.
      maxPayload: 4096,
      perMessageDeflate: false,
    },
    errorHandler: (err, socket, request) => {
      request.log.info({ err }, 'feed socket error');
      socket.terminate();
    },
    // Replaces the plugin's default (a bare close, code 1005): clients learn it is a shutdown
    // (1001), and a stalled socket holds the HTTP server's close (which waits for upgraded
    // sockets too) for at most closeGraceMs.
    preClose: async () => {
      hub.stop();
      for (const socket of app.websocketServer.clients) {
        if (socket.readyState === socket.OPEN) socket.close(FEED_CLOSE.shuttingDown, 'server shutting down');
      }
      app.websocketServer.close();
    },
  });
  // Registered after @fastify/websocket's own onRequest hook, which sets `request.ws`.
  app.addHook('onRequest', async (request) => {
    if (!request.ws || request.headers.authorization !== undefined) return;
    const token = upgradeToken(request);
    if (token !== null) request.headers.authorization = `Bearer ${token}`;
  });
  app.decorate('feeds', hub);
  app.addHook('onReady', async () => hub.start());
}
