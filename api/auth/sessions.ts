/**
 * Console sign-in: scrypt password check, short-lived access JWTs, and rotating opaque refresh
 * tokens stored only as SHA-256. Each login starts a token family; every refresh consumes the
 * presented token and issues the next one in the same family, so presenting a consumed token
 * means it was copied: the whole family is revoked and the thief and the victim both sign in again.
 *
 * An e-mail may have an account in several tenants (shared/store/rules/console-users.ts). Their
 * hashes share one salt, so one derivation checks the password against all of them and sign-in
 * costs the same whatever their number: the password (or an explicit tenant) picks the account.
 * Disabled accounts never sign in, with the same answer as a wrong password.
 */
import { matchPasswords } from '../../shared/auth/passwords.js';
import { hashPassword } from '../../shared/auth/passwords.js';
import { randomSecret, sha256 } from '../../shared/auth/secrets.js';
import type { TokenService } from '../../shared/auth/tokens.js';
import type { ConsoleUser } from '../../shared/domain.js';
import { createError } from '../../shared/errors.js';
import type { IdFactory } from '../../shared/ids.js';
import type { Store } from '../../shared/store/port.js';

export interface TokenPair {
  access_token: string;
  refresh_token: string;
  token_type: 'Bearer';
  expires_in: number;
}

export interface SessionServiceOptions {
  store: Store;
  tokens: TokenService;
  refreshTtlS: number;
  now: () => number;
  newId: IdFactory;
  /** A hash of a random password, computed once at startup (see login). */
  decoyHash: string;
}

const invalidCredentials = () => createError('INVALID_CREDENTIALS', 'email or password is incorrect');
const invalidRefresh = () => createError('UNAUTHENTICATED', 'refresh token is invalid, expired or revoked');

export class SessionService {
  readonly #o: SessionServiceOptions;

  constructor(options: SessionServiceOptions) {
    this.#o = options;
  }

  /**
   * `tenantId` (null: operators) narrows the candidates to one scope; without it the first account
   * in sign-in order whose password matches signs in.
   */
  async login(email: string, password: string, opts: { tenantId?: string | null } = {}): Promise<{ pair: TokenPair; user: ConsoleUser }> {
    const accounts = (await this.#o.store.consoleUsers.findAllByEmail(email)).filter(
      (a) => opts.tenantId === undefined || a.tenant_id === opts.tenantId,
    );
    // An unknown email still pays for one scrypt derivation, so response time does not reveal
    // which emails have accounts.
    const matched = await matchPasswords(password, accounts.length > 0 ? accounts.map((a) => a.password_hash) : [this.#o.decoyHash]);
    const user = accounts.find((a, i) => matched[i] === true && a.disabled_at === null);
    if (!user) throw invalidCredentials();
    const { password_hash: _hash, ...account } = user;
    return { pair: await this.#issue(account, this.#o.newId()), user: account };
  }

  /**
   * The caller's own password change: the current password is checked first, then every session
   * of the account ends (store) and a fresh pair is issued for the caller.
   */
  async changeOwnPassword(userId: string, current: string, next: string): Promise<{ pair: TokenPair; user: ConsoleUser }> {
    const account = await this.#o.store.consoleUsers.getWithPassword(userId);
    if (!account || account.disabled_at !== null) throw createError('UNAUTHENTICATED', 'account no longer exists or is disabled');
    const [ok] = await matchPasswords(current, [account.password_hash]);
    if (!ok) {
      throw createError('INVALID_CREDENTIALS', 'current password is incorrect', [{ field: 'body.current_password', message: 'incorrect' }]);
    }
    const updated = await this.#o.store.consoleUsers.update(account.tenant_id, userId, {
      password_hash: await hashPassword(next, account.password_hash),
    });
    if (!updated) throw createError('UNAUTHENTICATED', 'account no longer exists');
    return { pair: await this.#issue(updated, this.#o.newId()), user: updated };
  }

  async refresh(refreshToken: string): Promise<TokenPair> {
    const now = this.#o.now();
    const rec = await this.#o.store.refreshTokens.findByHash(sha256(refreshToken));
    if (!rec || rec.revoked_at !== null) throw invalidRefresh();
    if (rec.used_at !== null) {
      await this.#o.store.refreshTokens.revokeFamily(rec.family_id, now);
      throw invalidRefresh();
    }
    if (rec.expires_at <= now) throw invalidRefresh();
    // consume() is the atomic check: two concurrent refreshes with one token are also a reuse.
    if (!(await this.#o.store.refreshTokens.consume(rec.id, now))) {
      await this.#o.store.refreshTokens.revokeFamily(rec.family_id, now);
      throw invalidRefresh();
    }
    const user = await this.#o.store.consoleUsers.get(rec.user_id);
    // Disabling revokes the account's tokens; this also covers a refresh racing that write.
    if (!user || user.disabled_at !== null) throw invalidRefresh();
    return this.#issue(user, rec.family_id);
  }

  /**
   * Ends the sign-in the refresh token belongs to: its family is revoked, which also ends every
   * access token issued for it (their `sid`; see console-session.ts) and so what they opened.
   * Returns the sign-in ended, for the caller to announce; null for an unknown token, which is
   * already as signed-out as it gets (idempotent).
   */
  async logout(refreshToken: string): Promise<{ userId: string; sessionId: string } | null> {
    const rec = await this.#o.store.refreshTokens.findByHash(sha256(refreshToken));
    if (!rec) return null;
    await this.#o.store.refreshTokens.revokeFamily(rec.family_id, this.#o.now());
    return { userId: rec.user_id, sessionId: rec.family_id };
  }

  async #issue(user: ConsoleUser, familyId: string): Promise<TokenPair> {
    const refresh = randomSecret();
    await this.#o.store.refreshTokens.create({
      id: this.#o.newId(),
      user_id: user.id,
      family_id: familyId,
      token_hash: sha256(refresh),
      expires_at: this.#o.now() + this.#o.refreshTtlS * 1000,
    });
    const access = await this.#o.tokens.sign({
      sub: user.id,
      tenant_id: user.tenant_id,
      role: user.console_role,
      sv: user.session_version,
      // The family: signing out revokes it, and with it this access token (guard, feeds, MQTT).
      sid: familyId,
    });
    return { access_token: access, refresh_token: refresh, token_type: 'Bearer', expires_in: this.#o.tokens.ttlSeconds };
  }
}
