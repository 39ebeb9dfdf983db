/**
 * Whether a console account still stands behind a session issued to it: the one rule every place
 * that holds such a session applies (an API request's access token, a live feed or export re-checked
 * while it runs, a download link, a console MQTT session). The account must exist, be enabled, be
 * in the tenant the session was issued for, and be at the session version it was issued under: a
 * role change, disable or password change moves that version and so ends every session at once.
 */
import type { ConsoleUser } from '../domain.js';

export function sessionStands(
  user: Pick<ConsoleUser, 'tenant_id' | 'disabled_at' | 'session_version'> | null | undefined,
  tenantId: string | null,
  sessionVersion: number,
): user is ConsoleUser {
  return user != null && user.disabled_at === null && user.tenant_id === tenantId && user.session_version === sessionVersion;
}
