/**
 * Whether a console account still stands behind a session issued to it: the one rule every place
 * that holds such a session applies (an API request's access token, a live feed or export re-checked
 * while it runs, a download link, a console MQTT session). The account must exist, be enabled, be
 * in the tenant the session was issued for, and be at the session version it was issued under: a
 * role change, disable or password change moves that version and so ends every session at once.
 * And the sign-in itself must not have ended: signing out (or a reused refresh token) revokes its
 * refresh-token family, which ends that one sign-in's access tokens and what they opened, and no
 * other sign-in of the account.
 */
import type { ConsoleUser } from '../domain.js';
import type { Store } from '../store/port.js';

export function sessionStands(
  user: Pick<ConsoleUser, 'tenant_id' | 'disabled_at' | 'session_version'> | null | undefined,
  tenantId: string | null,
  sessionVersion: number,
): user is ConsoleUser {
  return user != null && user.disabled_at === null && user.tenant_id === tenantId && user.session_version === sessionVersion;
}

/** What an access token (or what it opened) says about the session it belongs to. */
export interface ConsoleSessionRef {
  userId: string;
  tenantId: string | null;
  /** The token's `sv` (0 when absent). */
  sessionVersion: number;
  /** The token's `sid`, its sign-in's refresh-token family; undefined for tokens issued before it existed. */
  sessionId: string | undefined;
}

/**
 * The account when the session still stands, else null: `sessionStands` on a primary-key read of
 * the account, and the sign-in's family not revoked, one indexed read (both at once, so on MongoDB
 * they cost one round trip). A token without a family (issued before `sid`) is judged by the
 * account alone until it expires. Throws when the store cannot tell.
 */
export async function consoleSessionStands(
  store: Pick<Store, 'consoleUsers' | 'refreshTokens'>,
  session: ConsoleSessionRef,
): Promise<ConsoleUser | null> {
  const [user, signedOut] = await Promise.all([
    store.consoleUsers.get(session.userId),
    session.sessionId === undefined ? false : store.refreshTokens.familyRevoked(session.sessionId),
  ]);
  return !signedOut && sessionStands(user, session.tenantId, session.sessionVersion) ? user : null;
}
