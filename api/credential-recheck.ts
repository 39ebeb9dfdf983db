/**
 * The caller's credential, authenticated again while long-lived work done under it goes on (a live
 * feed, an export walking its pages): a revocation made since, through any API process, ends that
 * work even when its bus announcement was lost. The same answers as the guard gives a new request:
 * an API key through `authenticateApiKey` itself (revoked, expired, its creator disabled or gone),
 * and still holding every read scope it held when the work began (its creator demoted); an
 * access token by the checks the guard makes on every request (consoleSessionStands, as
 * authenticateToken in auth/guard.ts: the account exists, is enabled, is in the same tenant, is
 * at the session version the token was issued under, and the token's sign-in was not signed out).
 * The token's signature is not verified again (277 µs each): its expiry and its signing key's
 * retirement are watched apart (feeds.ts).
 */
import type { FastifyRequest } from 'fastify';
import { decodeJwt } from 'jose';
import { EdgeplaneError } from '../shared/errors.js';
import { consoleSessionStands } from '../shared/auth/console-session.js';
import { authenticateApiKey } from './auth/api-keys.js';

export interface CredentialRecheck {
  /** Names the credential: work under the same one can share a read. */
  key: string;
  /** False when the credential no longer authenticates; throws when it cannot tell (store unavailable). */
  stillAuthorized: () => Promise<boolean>;
}

const BEARER_RE = /^Bearer\s+(\S+)\s*$/i;

/** The recheck of the request's credential; undefined for credentials not re-checked here (carriers: their push is). */
export function credentialRecheck(request: FastifyRequest): CredentialRecheck | undefined {
  const principal = request.principal;
  if (!principal) return undefined;
  const app = request.server;
  const bearer = BEARER_RE.exec(request.headers.authorization ?? '')?.[1];
  if (principal.kind === 'api_key') {
    const header = request.headers['x-api-key'];
    // As the guard reads it: Authorization first, else x-api-key.
    const key = bearer ?? (typeof header === 'string' ? header.trim() : undefined);
    if (key === undefined) return undefined;
    // What the work may read was decided under the key's read scopes then: a key whose creator was
    // demoted since and lost one of them (audit:read, say) ends the work; a write scope lost
    // changes nothing a feed or an export sends.
    const held = principal.scopes.filter((scope) => scope.endsWith(':read'));
    return {
      key: `api_key:${principal.keyId}`,
      stillAuthorized: () =>
        authenticateApiKey(app.store, key, app.clock(), app.storeFaults).then(
          (now) => held.every((scope) => now.scopes.includes(scope)),
          (err: unknown) => {
            if (err instanceof EdgeplaneError && err.code === 'UNAUTHENTICATED') return false;
            throw err;
          },
        ),
    };
  }
  if (principal.kind !== 'user' || bearer === undefined) return undefined;
  const { sv } = decodeJwt(bearer);
  const sessionVersion = typeof sv === 'number' ? sv : 0;
  const { userId, tenantId, sessionId } = principal;
  // The sign-in is part of the key: signing out ends its work and not that of the account's others.
  const session = { userId, tenantId, sessionVersion, sessionId };
  return {
    key: `user:${userId}:${sessionVersion}:${sessionId ?? ''}`,
    stillAuthorized: async () => (await consoleSessionStands(app.store, session)) !== null,
  };
}

