/**
 * Who may connect, and as whom (DESIGN §3 ACL). Decides a CONNECT from its client id, username
 * and password and returns either a principal or a CONNACK refusal code. No aedes types here:
 * broker.ts adapts this to the aedes `authenticate` hook.
 *
 * CONNACK return codes are those of MQTT 3.1.1 §3.2.2.3 (Table 3.1). On any non-zero code aedes
 * closes the network connection after the CONNACK [MQTT-3.2.2-5].
 */
import { checkCarrierKey } from '../shared/auth/carrier-keys.js';
import { parseTowerPassword, safeEqual, sha256 } from '../shared/auth/secrets.js';
import type { TokenService } from '../shared/auth/tokens.js';
import { isEdgeplaneError } from '../shared/errors.js';
import { TOPIC_ID_RE } from '../shared/ids.js';
import { mqttIdentity, type MqttPrincipal } from '../shared/mqtt/topics.js';
import type { Store } from '../shared/store/port.js';

/** 0x02 Identifier rejected, 0x03 Server unavailable, 0x04 Bad user name or password, 0x05 Not authorized. */
export const CONNACK = {
  IDENTIFIER_REJECTED: 2,
  SERVER_UNAVAILABLE: 3,
  BAD_USERNAME_OR_PASSWORD: 4,
  NOT_AUTHORIZED: 5,
} as const;
export type ConnackRefusal = (typeof CONNACK)[keyof typeof CONNACK];

export type AuthFailureReason =
  | 'anonymous_refused'
  | 'missing_password'
  | 'password_without_username'
  | 'unknown_username'
  | 'malformed_password'
  | 'unknown_credential'
  | 'bad_secret'
  | 'credential_of_other_tower'
  | 'revoked'
  | 'unknown_tower'
  | 'tower_retired'
  | 'credential_of_other_carrier'
  | 'bad_client_id'
  | 'bad_service_secret'
  | 'bad_token'
  | 'token_expired'
  | 'operator_refused'
  | 'user_revoked'
  | 'persistent_session_cap'
  | 'store_unavailable';

export type AuthOutcome =
  /**
   * `expiresAt`: when the console user's access token expires (ms), and the session with it;
   * `sessionVersion`: the account's session version the token was issued under (its `sv`);
   * `sessionId`: the sign-in it was issued for (its `sid`; absent in older tokens).
   */
  | { ok: true; principal: MqttPrincipal; expiresAt?: number; sessionVersion?: number; sessionId?: string }
  | { ok: false; returnCode: ConnackRefusal; reason: AuthFailureReason };

export interface AuthenticateDeps {
  serviceSecret: string;
  allowAnonymous: boolean;
  towerCredentials: Pick<Store['towerCredentials'], 'get' | 'touch'>;
  towers: Pick<Store['towers'], 'get'>;
  /** Carrier feed credentials; without them, carriers cannot log in. */
  carrierCredentials?: Pick<Store['carrierCredentials'], 'get' | 'touch'>;
  tokens: Pick<TokenService, 'verify'>;
  /** Credentials revoked on the bus since start (tower or carrier), possibly newer than the store read. */
  isRevoked: (credentialId: string) => boolean;
  /** When a console user was revoked (bus), if it was: tokens issued before are refused. */
  userRevokedAt: (userId: string) => number | undefined;
  /**
   * Whether the console user still exists and may sign in (the store), when known, under the
   * session version its token was issued with (a role or password change since ends the token),
   * and the token's sign-in (its `sid`) was not signed out.
   */
  isUserActive?: (userId: string, tenantId: string, sessionVersion: number, sessionId?: string) => Promise<boolean>;
  now: () => number;
  /** `touch` runs off the hot path; its failure is reported here and never fails the CONNECT. */
  onTouchError: (err: unknown, credentialId: string) => void;
}

export interface ConnectRequest {
  clientId: string;
  /** The CONNECT's client id was empty and the broker assigned `clientId` [MQTT-3.1.3-6]. */
  assignedClientId: boolean;
  username: string | undefined;
  password: Buffer | undefined;
}

const refuse = (returnCode: ConnackRefusal, reason: AuthFailureReason): AuthOutcome => ({ ok: false, returnCode, reason });

export async function authenticateConnection(deps: AuthenticateDeps, req: ConnectRequest): Promise<AuthOutcome> {
  const { username } = req;
  if (username === undefined || username === '') return authenticateAnonymous(deps, req);
  // A username without a password is legal MQTT ([MQTT-3.1.2-22] only forbids the reverse),
  // but none of our identities can authenticate without one.
  if (req.password === undefined || req.password.length === 0) {
    return refuse(CONNACK.BAD_USERNAME_OR_PASSWORD, 'missing_password');
  }
  const password = req.password.toString('utf8');

  if (username === mqttIdentity.consoleUsername) return authenticateConsole(deps, req, password);
  if (username.startsWith(mqttIdentity.carrierUsernamePrefix)) {
    return authenticateCarrier(deps, req.clientId, username.slice(mqttIdentity.carrierUsernamePrefix.length), password);
  }
  if (username.startsWith(mqttIdentity.serviceUsernamePrefix)) {
    return authenticateService(deps, req.clientId, username.slice(mqttIdentity.serviceUsernamePrefix.length), password);
  }
  if (TOPIC_ID_RE.test(username)) return authenticateTower(deps, req.clientId, username, password);
  return refuse(CONNACK.BAD_USERNAME_OR_PASSWORD, 'unknown_username');
}

/** Client ids of towers, consoles and services are reserved, so no one else can take over their sessions. */
function clientIdReservedForOthers(clientId: string, kind: MqttPrincipal['kind']): boolean {
  if (kind !== 'tower' && clientId.startsWith(mqttIdentity.towerClientIdPrefix)) return true;
  if (kind !== 'console' && clientId.startsWith(mqttIdentity.consoleClientIdPrefix)) return true;
  if (kind !== 'service' && clientId.startsWith(mqttIdentity.serviceClientIdPrefix)) return true;
  if (kind !== 'carrier' && clientId.startsWith(mqttIdentity.carrierClientIdPrefix)) return true;
  return false;
}

/**
 * A carrier pushing its feeds: username `carrier:<carrierId>`, its feed key as password, client id
 * `carrier-<carrierId>` (pinned, as for towers, so no one can take over its session).
 */
async function authenticateCarrier(deps: AuthenticateDeps, clientId: string, carrierId: string, password: string): Promise<AuthOutcome> {
  const credentials = deps.carrierCredentials;
  if (!credentials || !TOPIC_ID_RE.test(carrierId)) return refuse(CONNACK.BAD_USERNAME_OR_PASSWORD, 'unknown_username');
  let check: Awaited<ReturnType<typeof checkCarrierKey>>;
  try {
    check = await checkCarrierKey(password, (id) => credentials.get(id));
  } catch {
    return refuse(CONNACK.SERVER_UNAVAILABLE, 'store_unavailable');
  }
  if (!check.ok) {
    if (check.reason === 'revoked') return refuse(CONNACK.NOT_AUTHORIZED, 'revoked');
    return refuse(CONNACK.BAD_USERNAME_OR_PASSWORD, check.reason === 'malformed' ? 'malformed_password' : check.reason);
  }
  if (check.carrierId !== carrierId) return refuse(CONNACK.BAD_USERNAME_OR_PASSWORD, 'credential_of_other_carrier');
  if (deps.isRevoked(check.credentialId)) return refuse(CONNACK.NOT_AUTHORIZED, 'revoked');
  if (clientId !== mqttIdentity.carrierClientId(carrierId)) return refuse(CONNACK.IDENTIFIER_REJECTED, 'bad_client_id');
  const credentialId = check.credentialId;
  credentials.touch(credentialId, deps.now()).catch((err: unknown) => deps.onTouchError(err, credentialId));
  return { ok: true, principal: { kind: 'carrier', carrierId, credentialId } };
}

/**
 * Why a tower's login no longer stands, or null: its credential gone or revoked, or its tower gone
 * or retired — what a CONNECT checks once the secret is right. For sessions already open (the
 * broker after a bus gap, the line ingest before each line). Throws when the store cannot answer.
 */
export async function towerLoginWithdrawn(
  store: { towerCredentials: Pick<Store['towerCredentials'], 'get'>; towers: Pick<Store['towers'], 'get'> },
  credentialId: string,
  towerId: string,
): Promise<'credential revoked' | 'tower retired' | null> {
  const [credential, tower] = await Promise.all([store.towerCredentials.get(credentialId), store.towers.get(towerId)]);
  if (!credential || credential.revoked_at !== null) return 'credential revoked';
  if (!tower || tower.retired_at !== null) return 'tower retired';
  return null;
}

async function authenticateTower(deps: AuthenticateDeps, clientId: string, towerId: string, password: string): Promise<AuthOutcome> {
  const parsed = parseTowerPassword(password);
  if (!parsed) return refuse(CONNACK.BAD_USERNAME_OR_PASSWORD, 'malformed_password');

  let credential: Awaited<ReturnType<AuthenticateDeps['towerCredentials']['get']>>;
  try {
    credential = await deps.towerCredentials.get(parsed.credentialId);
  } catch {
    // 0x03: the credentials may be fine; we could not check them. The agent retries later.
    return refuse(CONNACK.SERVER_UNAVAILABLE, 'store_unavailable');
  }
  if (!credential) return refuse(CONNACK.BAD_USERNAME_OR_PASSWORD, 'unknown_credential');
  if (!safeEqual(sha256(parsed.secret), credential.secret_hash)) return refuse(CONNACK.BAD_USERNAME_OR_PASSWORD, 'bad_secret');
  // A valid credential presented under another tower's name is a wrong username/password pair.
  if (credential.tower_id !== towerId) return refuse(CONNACK.BAD_USERNAME_OR_PASSWORD, 'credential_of_other_tower');
  // The secret is right but the operator withdrew it: not authorized, not "wrong password".
  if (credential.revoked_at !== null || deps.isRevoked(credential.id)) return refuse(CONNACK.NOT_AUTHORIZED, 'revoked');

  // [MQTT-3.1.3-2] the client id identifies the session; a tower may only use its own, so one
  // tower can never take over another's persistent session (the server would close the
  // existing connection [MQTT-3.1.4-2]).
  if (clientId !== mqttIdentity.towerClientId(towerId)) return refuse(CONNACK.IDENTIFIER_REJECTED, 'bad_client_id');

  try {
    const tower = await deps.towers.get(towerId);
    if (!tower) return refuse(CONNACK.NOT_AUTHORIZED, 'unknown_tower');
    // Its carrier retired it (carrier feed): the equipment is gone, its credentials with it.
    if (tower.retired_at !== null) return refuse(CONNACK.NOT_AUTHORIZED, 'tower_retired');
  } catch {
    return refuse(CONNACK.SERVER_UNAVAILABLE, 'store_unavailable');
  }

  const credentialId = credential.id;
  deps.towerCredentials.touch(credentialId, deps.now()).catch((err: unknown) => deps.onTouchError(err, credentialId));
  return { ok: true, principal: { kind: 'tower', towerId, credentialId } };
}

function authenticateService(deps: AuthenticateDeps, clientId: string, name: string, password: string): AuthOutcome {
  if (!TOPIC_ID_RE.test(name)) return refuse(CONNACK.BAD_USERNAME_OR_PASSWORD, 'unknown_username');
  if (!safeEqual(password, deps.serviceSecret)) return refuse(CONNACK.BAD_USERNAME_OR_PASSWORD, 'bad_service_secret');
  if (clientIdReservedForOthers(clientId, 'service')) return refuse(CONNACK.IDENTIFIER_REJECTED, 'bad_client_id');
  return { ok: true, principal: { kind: 'service', name } };
}

async function authenticateConsole(deps: AuthenticateDeps, req: ConnectRequest, token: string): Promise<AuthOutcome> {
  let claims: Awaited<ReturnType<TokenService['verify']>>;
  try {
    claims = await deps.tokens.verify(token);
  } catch (err) {
    const expired = isEdgeplaneError(err) && err.code === 'TOKEN_EXPIRED';
    return refuse(CONNACK.BAD_USERNAME_OR_PASSWORD, expired ? 'token_expired' : 'bad_token');
  }
  // Platform operators see every tenant through the API; MQTT only offers per-tenant views,
  // and an operator principal has no tenant prefix to confine it to.
  if (claims.tenant_id === null) return refuse(CONNACK.NOT_AUTHORIZED, 'operator_refused');
  // [MQTT-3.1.4-2] a CONNECT with a live session's client id closes that session: a console
  // user may only use its own ids (or let the broker assign one), never another user's.
  if (!req.assignedClientId && !mqttIdentity.isConsoleClientIdOf(req.clientId, claims.sub)) {
    return refuse(CONNACK.IDENTIFIER_REJECTED, 'bad_client_id');
  }
  const times = tokenTimes(token);
  const revokedAt = deps.userRevokedAt(claims.sub);
  // Disabled or deleted after this token was issued: it still verifies, but is no longer good.
  if (revokedAt !== undefined && times.issuedAt <= revokedAt) return refuse(CONNACK.NOT_AUTHORIZED, 'user_revoked');
  // Tokens issued before session versions existed read as version 0, as the API's guard reads them.
  const sessionVersion = claims.sv ?? 0;
  if (deps.isUserActive) {
    try {
      if (!(await deps.isUserActive(claims.sub, claims.tenant_id, sessionVersion, claims.sid))) return refuse(CONNACK.NOT_AUTHORIZED, 'user_revoked');
    } catch {
      return refuse(CONNACK.SERVER_UNAVAILABLE, 'store_unavailable');
    }
  }
  return {
    ok: true,
    principal: { kind: 'console', tenantId: claims.tenant_id, userId: claims.sub },
    expiresAt: times.expiresAt,
    sessionVersion,
    ...(claims.sid !== undefined && { sessionId: claims.sid }),
  };
}

/**
 * `iat` and `exp` of an access token that `tokens.verify` has already accepted (so both exist
 * and are numbers; TokenService signs every token with them), in milliseconds.
 */
function tokenTimes(token: string): { issuedAt: number; expiresAt: number } {
  const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { iat?: unknown; exp?: unknown };
  const seconds = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v * 1000 : 0);
  return { issuedAt: seconds(payload.iat), expiresAt: seconds(payload.exp) };
}

function authenticateAnonymous(deps: AuthenticateDeps, req: ConnectRequest): AuthOutcome {
  // A password without a username is forbidden by [MQTT-3.1.2-22]; treat it as bad credentials.
  if (req.password !== undefined) return refuse(CONNACK.BAD_USERNAME_OR_PASSWORD, 'password_without_username');
  if (!deps.allowAnonymous) return refuse(CONNACK.NOT_AUTHORIZED, 'anonymous_refused');
  if (clientIdReservedForOthers(req.clientId, 'anonymous')) return refuse(CONNACK.IDENTIFIER_REJECTED, 'bad_client_id');
  // Development only: connected, but publishAcl/subscribeAcl grant it nothing.
  return { ok: true, principal: { kind: 'anonymous' } };
}
