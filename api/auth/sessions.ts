/**
 * Console sign-in: scrypt password check, short-lived access JWTs, and rotating opaque refresh
 * tokens stored only as SHA-256. Each login starts a token family; every refresh consumes the
 * presented token and issues the next one in the same family, so presenting a consumed token
 * means it was copied: the whole family is revoked and the thief and the victim both sign in again.
 */
import { verifyPassword } from '../../shared/auth/passwords.js';
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

  async login(email: string, password: string): Promise<TokenPair> {
    const user = await this.#o.store.consoleUsers.findByEmail(email);
    // An unknown email still pays for one scrypt verification, so response time does not reveal
    // which emails have accounts.
    const ok = await verifyPassword(password, user?.password_hash ?? this.#o.decoyHash);
    if (!user || !ok) throw invalidCredentials();
    return this.#issue(user, this.#o.newId());
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
    if (!user) throw invalidRefresh();
    return this.#issue(user, rec.family_id);
  }

  /** Idempotent: an unknown token is already as signed-out as it gets. */
  async logout(refreshToken: string): Promise<void> {
    const rec = await this.#o.store.refreshTokens.findByHash(sha256(refreshToken));
    if (rec) await this.#o.store.refreshTokens.revokeFamily(rec.family_id, this.#o.now());
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
    const access = await this.#o.tokens.sign({ sub: user.id, tenant_id: user.tenant_id, role: user.console_role });
    return { access_token: access, refresh_token: refresh, token_type: 'Bearer', expires_in: this.#o.tokens.ttlSeconds };
  }
}
