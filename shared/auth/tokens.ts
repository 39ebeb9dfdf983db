/**
 * Access tokens: short-lived JWTs signed with ES256 keys (jose). Keys live in a key ring persisted
 * in the data dir; the newest signs, all verify, and the JWKS endpoint publishes every public key
 * so services can verify tokens signed before a rotation until those expire.
 */
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import {
  SignJWT,
  exportJWK,
  generateKeyPair,
  importJWK,
  jwtVerify,
  createLocalJWKSet,
  errors as joseErrors,
  type JWK,
  type JSONWebKeySet,
} from 'jose';
import { z } from 'zod';
import type { ConsoleRole } from '../domain.js';
import { createError } from '../errors.js';
import { createFileOnce, makeDirectory, replaceFile } from '../atomic-file.js';

const ALG = 'ES256';
export const TOKEN_ISSUER = 'edgeplane';
export const TOKEN_AUDIENCE = 'edgeplane-api';

export interface AccessClaims {
  /** Console user id. */
  sub: string;
  tenant_id: string | null;
  role: ConsoleRole;
  /**
   * The account's session version when the token was issued; a token whose version is no longer
   * the account's was ended (role, disable, password). Absent in tokens issued before versions
   * existed, which read as version 0.
   */
  sv?: number;
  /**
   * The sign-in the token was issued for: its refresh-token family (api/auth/sessions.ts). Signing
   * out revokes the family, and every place that accepts the token refuses it from then on.
   * Absent in tokens issued before sign-out ended access tokens: those stand until they expire.
   */
  sid?: string;
}

const ClaimsSchema = z.object({
  sub: z.string().min(1),
  tenant_id: z.string().nullable(),
  role: z.enum(['operator', 'owner', 'admin', 'analyst', 'viewer']),
  sv: z.number().int().nonnegative().optional(),
  sid: z.string().min(1).max(200).optional(),
});

interface StoredKey {
  kid: string;
  created_at: number;
  private_jwk: JWK;
  public_jwk: JWK;
}

const StoredKeysSchema = z.object({
  keys: z.array(
    z.object({
      kid: z.string(),
      created_at: z.number(),
      private_jwk: z.record(z.string(), z.unknown()),
      public_jwk: z.record(z.string(), z.unknown()),
    }),
  ),
});

async function newKey(now: number): Promise<StoredKey> {
  const { publicKey, privateKey } = await generateKeyPair(ALG, { extractable: true });
  const kid = `k${now.toString(36)}${Math.random().toString(36).slice(2, 8)}`;
  const public_jwk = { ...(await exportJWK(publicKey)), kid, alg: ALG, use: 'sig' };
  const private_jwk = { ...(await exportJWK(privateKey)), kid, alg: ALG };
  return { kid, created_at: now, private_jwk, public_jwk };
}

export class KeyRing {
  #keys: StoredKey[];
  readonly #file: string | null;
  #generation = 0;

  private constructor(keys: StoredKey[], file: string | null) {
    this.#keys = keys;
    this.#file = file;
  }

  /**
   * Loads the ring from `file`, creating it with one key on first use. `null` keeps it in memory.
   * Several processes may open one file at once (distributed mode sharing a secrets directory):
   * the first complete file wins and the others read it, so they all sign with one key.
   */
  static async open(file: string | null, now = Date.now()): Promise<KeyRing> {
    if (!file) return new KeyRing([await newKey(now)], null);
    const existing = await readKeys(file);
    if (existing) return new KeyRing(existing, file);
    // Created once, whole and durably; a process that loses the race reads the winner's.
    await createFileOnce(file, JSON.stringify({ keys: [await newKey(now)] }));
    const keys = await readKeys(file);
    if (!keys) throw new Error(`signing key file ${file} is empty`);
    return new KeyRing(keys, file);
  }

  /** Re-reads the file (another process may have rotated); true when the ring changed. */
  async reload(): Promise<boolean> {
    if (!this.#file) return false;
    const keys = await readKeys(this.#file);
    if (!keys || JSON.stringify(keys.map((k) => k.kid)) === JSON.stringify(this.#keys.map((k) => k.kid))) return false;
    this.#keys = keys;
    this.#generation++;
    return true;
  }

  /** Changes whenever the set of keys does (what was verified before may not verify now). */
  get generation(): number {
    return this.#generation;
  }

  hasKid(kid: string): boolean {
    return this.#keys.some((k) => k.kid === kid);
  }

  get currentKid(): string {
    return this.#keys[this.#keys.length - 1]!.kid;
  }

  /** Adds a new signing key; older keys keep verifying until `retire` drops them. */
  async rotate(now = Date.now()): Promise<string> {
    // Start from the file: another process may have rotated since we loaded it.
    await this.reload();
    this.#keys.push(await newKey(now));
    this.#generation++;
    await this.#save();
    return this.currentKid;
  }

  /** Drops verification keys created before `before`, always keeping the current one. */
  async retire(before: number): Promise<void> {
    // Start from the file, like rotate: a ring that missed another process's rotation would
    // otherwise keep its own (older) key as the current one and write the newer one away.
    await this.reload();
    const current = this.#keys[this.#keys.length - 1]!;
    this.#keys = this.#keys.filter((k) => k === current || k.created_at >= before);
    this.#generation++;
    await this.#save();
  }

  jwks(): JSONWebKeySet {
    return { keys: this.#keys.map((k) => k.public_jwk) };
  }

  current(): StoredKey {
    return this.#keys[this.#keys.length - 1]!;
  }

  async #save(): Promise<void> {
    if (!this.#file) return;
    await makeDirectory(dirname(this.#file), { mode: 0o700 });
    // Replaced whole and synced, so neither a crash nor a power cut leaves a truncated key file
    // (0600: private keys); a temporary name of its own, as other processes may rotate too.
    await replaceFile(this.#file, JSON.stringify({ keys: this.#keys }), { sync: true, uniqueTmp: true });
  }
}

async function readKeys(file: string): Promise<StoredKey[] | null> {
  try {
    const parsed = StoredKeysSchema.parse(JSON.parse(await readFile(file, 'utf8')));
    return parsed.keys.length > 0 ? (parsed.keys as StoredKey[]) : null;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    if (err instanceof SyntaxError || err instanceof z.ZodError) {
      throw new Error(`signing key file ${file} is not a key ring (${err instanceof SyntaxError ? err.message : 'unexpected shape'}); restore it, or delete it to have new keys generated (every token signed so far then stops verifying)`, { cause: err });
    }
    throw err;
  }
}

/**
 * A token with an unknown kid makes the ring re-read its file at most this often; and every
 * process re-reads it at least this often (by the service's clock) while it verifies tokens, so
 * keys another process retired stop verifying here too (all its kids are known: nothing else
 * would make it look).
 */
export const KEY_RELOAD_INTERVAL_MS = 5000;
const RELOAD_INTERVAL_MS = KEY_RELOAD_INTERVAL_MS;

/** Access tokens whose verification is remembered (the oldest are forgotten first). */
const VERIFIED_CACHE_SIZE = 10_000;

export class TokenService {
  readonly #ring: KeyRing;
  readonly #ttlS: number;
  readonly #now: () => number;
  #lastReload = 0;
  /** When the ring was last re-read for retirements made elsewhere (the service's clock). */
  #lastRefresh: number | null = null;
  /** The ring's public keys, imported once per key-set generation (not per request). */
  #keySet: { generation: number; get: ReturnType<typeof createLocalJWKSet> } | null = null;
  /**
   * Tokens already verified against the current keys, with their expiry: verifying an ES256
   * signature (and importing the key) on every request was the largest CPU cost of an
   * authenticated API call. An entry is used only while the key set is unchanged and the token
   * has not expired; the claims carry nothing else a later check could contradict.
   */
  readonly #verified = new Map<string, { claims: AccessClaims; exp: number; generation: number }>();

  constructor(ring: KeyRing, accessTtlS: number, now: () => number = Date.now) {
    this.#ring = ring;
    this.#ttlS = accessTtlS;
    this.#now = now;
  }

  get ttlSeconds(): number {
    return this.#ttlS;
  }

  async sign(claims: AccessClaims): Promise<string> {
    const key = this.#ring.current();
    const privateKey = await importJWK(key.private_jwk, ALG);
    const iat = Math.floor(this.#now() / 1000);
    return new SignJWT({
      tenant_id: claims.tenant_id,
      role: claims.role,
      ...(claims.sv !== undefined && { sv: claims.sv }),
      ...(claims.sid !== undefined && { sid: claims.sid }),
    })
      .setProtectedHeader({ alg: ALG, kid: key.kid, typ: 'JWT' })
      .setSubject(claims.sub)
      .setIssuer(TOKEN_ISSUER)
      .setAudience(TOKEN_AUDIENCE)
      .setIssuedAt(iat)
      .setExpirationTime(iat + this.#ttlS)
      .sign(privateKey);
  }

  /** Verifies signature, issuer, audience and expiry; throws TOKEN_EXPIRED or UNAUTHENTICATED. */
  async verify(token: string): Promise<AccessClaims> {
    const now = this.#now();
    if (this.#lastRefresh === null || now < this.#lastRefresh || now - this.#lastRefresh >= RELOAD_INTERVAL_MS) {
      this.#lastRefresh = now;
      await this.#ring.reload().catch(() => false);
    }
    const hit = this.#verified.get(token);
    if (hit) {
      // jose's rule: expired once the current second reaches `exp`.
      if (hit.generation === this.#ring.generation && Math.floor(this.#now() / 1000) < hit.exp) return { ...hit.claims };
      this.#verified.delete(token);
    }
    // A kid we do not know may come from a rotation made by another process sharing the ring.
    const kid = kidOf(token);
    if (kid && !this.#ring.hasKid(kid) && Date.now() - this.#lastReload >= RELOAD_INTERVAL_MS) {
      this.#lastReload = Date.now();
      await this.#ring.reload().catch(() => false);
    }
    try {
      const generation = this.#ring.generation;
      if (this.#keySet?.generation !== generation) this.#keySet = { generation, get: createLocalJWKSet(this.#ring.jwks()) };
      const { payload } = await jwtVerify(token, this.#keySet.get, {
        issuer: TOKEN_ISSUER,
        audience: TOKEN_AUDIENCE,
        algorithms: [ALG],
        // Every token issued here expires: one without `exp` would be valid for ever.
        requiredClaims: ['exp'],
        currentDate: new Date(this.#now()),
      });
      const claims = ClaimsSchema.safeParse(payload);
      if (!claims.success) throw createError('UNAUTHENTICATED', 'access token has unexpected claims');
      if (typeof payload.exp === 'number') {
        if (this.#verified.size >= VERIFIED_CACHE_SIZE) this.#verified.delete(this.#verified.keys().next().value!);
        this.#verified.set(token, { claims: { ...claims.data }, exp: payload.exp, generation });
      }
      return claims.data;
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) throw createError('TOKEN_EXPIRED', 'access token expired');
      if (err instanceof Error && err.name === 'EdgeplaneError') throw err;
      throw createError('UNAUTHENTICATED', 'access token is invalid');
    }
  }
}

function kidOf(token: string): string | null {
  try {
    const header = JSON.parse(Buffer.from(token.split('.')[0] ?? '', 'base64url').toString('utf8')) as { kid?: unknown };
    return typeof header.kid === 'string' ? header.kid : null;
  } catch {
    return null;
  }
}
