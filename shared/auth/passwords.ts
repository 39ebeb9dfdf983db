/**
 * Console passwords are hashed with scrypt, a memory-hard KDF shipped with Node (no native addon).
 * Parameters are stored with the hash so they can be raised later without breaking old hashes.
 */
import { randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';

const scrypt = (pw: string, salt: Buffer, keylen: number, opts: ScryptOptions) =>
  new Promise<Buffer>((resolve, reject) =>
    scryptCb(pw, salt, keylen, opts, (err, key) => (err ? reject(err) : resolve(key))),
  );

/** N=2^15, r=8 → 32 MiB per hash: OWASP's scrypt baseline. */
const DEFAULTS = { N: 1 << 15, r: 8, p: 1, keylen: 32 };

interface ScryptParams {
  N: number;
  r: number;
  p: number;
  salt: Buffer;
}

function parse(stored: string): (ScryptParams & { key: Buffer }) | null {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return null;
  const [N, r, p] = [Number(parts[1]), Number(parts[2]), Number(parts[3])];
  if (![N, r, p].every((n) => Number.isSafeInteger(n) && n > 0)) return null;
  return { N, r, p, salt: Buffer.from(parts[4]!, 'base64url'), key: Buffer.from(parts[5]!, 'base64url') };
}

const derive = (password: string, s: ScryptParams, keylen: number): Promise<Buffer> =>
  scrypt(password, s.salt, keylen, { N: s.N, r: s.r, p: s.p, maxmem: 128 * s.N * s.r * 2 });

/**
 * Hashes with a fresh salt, or with the salt and parameters of `sameSaltAs` (another hash). The
 * accounts of one e-mail share a salt, so sign-in derives one key for all of them
 * (`matchPasswords`): its cost does not depend on how many accounts the e-mail has.
 */
export async function hashPassword(password: string, sameSaltAs?: string): Promise<string> {
  const base = sameSaltAs === undefined ? null : parse(sameSaltAs);
  const params: ScryptParams = base ?? { ...DEFAULTS, salt: randomBytes(16) };
  const keylen = base?.key.length ?? DEFAULTS.keylen;
  const key = await derive(password, params, keylen);
  return `scrypt$${params.N}$${params.r}$${params.p}$${params.salt.toString('base64url')}$${key.toString('base64url')}`;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  return (await matchPasswords(password, [stored]))[0] ?? false;
}

/**
 * Which of `stored` the password matches. One derivation per distinct salt and parameters (one for
 * accounts sharing a salt), compared in constant time against each hash.
 */
export async function matchPasswords(password: string, stored: readonly string[]): Promise<boolean[]> {
  const derived = new Map<string, Promise<Buffer>>();
  return Promise.all(
    stored.map(async (hash) => {
      const s = parse(hash);
      if (!s) return false;
      const group = `${s.N}$${s.r}$${s.p}$${s.salt.toString('base64url')}$${s.key.length}`;
      let key = derived.get(group);
      if (!key) {
        key = derive(password, s, s.key.length);
        derived.set(group, key);
      }
      return timingSafeEqual(await key, s.key);
    }),
  );
}

/** A well-formed hash of a random password: verifying against it costs the same as a real one. */
export async function decoyHash(): Promise<string> {
  return hashPassword(randomBytes(16).toString('hex'));
}
