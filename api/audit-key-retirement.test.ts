/**
 * Adversarial audit: retiring a signing key (`POST /signing-keys/retire`, the answer to a leaked
 * key) across API processes. The API processes of a deployment share one key ring file in their
 * data dir, each holding its own copy in memory, as `edgeplane api` × N do; here two harnesses,
 * each with its own store handle on one SQLite file and its own KeyRing opened from one
 * jwt-keys.json.
 *
 * Found:
 * - A key retired through one process kept verifying on the others for as long as they ran: a
 *   process re-read the ring only for a token whose kid it did not know, and every kid of a
 *   retired key it already knew. A token signed with the leaked key stayed valid there.
 * - A retire answered by a process that had not seen a rotation made elsewhere worked on its own
 *   stale copy: it kept its old key as "the current one" and wrote the ring back without the
 *   newer key, so every token the rotating process signed from then on was refused elsewhere.
 *
 * Now every process re-reads the ring at least every KEY_RELOAD_INTERVAL_MS while it verifies
 * tokens (moved here on the harness clock, never waited for), and a retire starts from the file.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KEY_RELOAD_INTERVAL_MS, KeyRing } from '../shared/auth/tokens.js';
import { SqliteStore } from '../shared/store/sqlite/sqlite-store.js';
import { OPERATOR_EMAIL, json, login, startHarness, type Harness, type Session } from './test-support.js';

let dir: string;
let p1: Harness;
let p2: Harness;
const cleanup: Array<() => Promise<unknown>> = [];

/** An API process: its own store handle on the shared database, its own copy of the shared key ring file. */
async function apiProcess(): Promise<Harness> {
  const store = new SqliteStore({ file: join(dir, 'edgeplane.db') });
  await store.init();
  const keyRing = await KeyRing.open(join(dir, 'jwt-keys.json'));
  const h = await startHarness({ rateLimitPerMin: 1_000_000, store, keyRing });
  cleanup.push(async () => {
    await h.close();
    await store.close();
  });
  return h;
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'edgeplane-key-retire-'));
  p1 = await apiProcess();
  p2 = await apiProcess();
});
afterEach(async () => {
  for (const close of cleanup.splice(0).reverse()) await close();
  await rm(dir, { recursive: true, force: true });
});

const me = (h: Harness, s: Session) => h.app.inject({ method: 'GET', url: '/api/v1/me', headers: s.headers });
const rotate = (h: Harness, s: Session) => h.app.inject({ method: 'POST', url: '/api/v1/signing-keys/rotate', headers: s.headers });
const retire = (h: Harness, s: Session, before: number) =>
  h.app.inject({ method: 'POST', url: '/api/v1/signing-keys/retire', headers: s.headers, payload: { before } });
const jwksKids = async (h: Harness) =>
  json<{ keys: Array<{ kid: string }> }>(await h.app.inject({ method: 'GET', url: '/.well-known/jwks.json' })).keys.map((k) => k.kid);
function kidOf(s: Session): string {
  return (JSON.parse(Buffer.from(s.access.split('.')[0]!, 'base64url').toString('utf8')) as { kid: string }).kid;
}

describe('retiring a signing key with several API processes', () => {
  it('a key retired through one process stops verifying on the others', async () => {
    const leaked = await login(p1.app, OPERATOR_EMAIL);
    expect((await me(p2, leaked)).statusCode).toBe(200);
    p1.clock.advance(1000);
    expect((await rotate(p1, leaked)).statusCode).toBe(200);
    const fresh = await login(p1.app, OPERATOR_EMAIL);
    // p2 learns the new key from the first token that carries it: it now knows both kids.
    expect((await me(p2, fresh)).statusCode).toBe(200);
    expect(await jwksKids(p2)).toEqual([kidOf(leaked), kidOf(fresh)]);

    const res = await retire(p1, fresh, p1.clock.now);
    expect(res.statusCode, res.body).toBe(200);
    expect((await me(p1, leaked)).statusCode).toBe(401);

    // Within the reload interval p2 has re-read the ring: the retired key's tokens end there too.
    p2.clock.advance(KEY_RELOAD_INTERVAL_MS);
    const onP2 = await me(p2, leaked);
    expect(onP2.statusCode, onP2.body).toBe(401);
    expect(json<{ error: { code: string } }>(onP2).error.code).toBe('UNAUTHENTICATED');
    expect((await me(p2, fresh)).statusCode).toBe(200);
    expect(await jwksKids(p2)).toEqual([kidOf(fresh)]);
  });

  it('a retire answered by a process that missed a rotation keeps the newer key', async () => {
    const onP2 = await login(p2.app, OPERATOR_EMAIL);
    const oldKid = kidOf(onP2);
    p1.clock.advance(1000);
    const rotated = await rotate(p1, await login(p1.app, OPERATOR_EMAIL));
    const { kid: newKid } = json<{ kid: string }>(rotated);
    const onP1 = await login(p1.app, OPERATOR_EMAIL);
    expect(kidOf(onP1)).toBe(newKid);

    // p2 has not seen the rotation; the operator retires the old key there.
    const res = await retire(p2, onP2, p1.clock.now);
    expect(res.statusCode, res.body).toBe(200);
    expect(json(res)).toEqual({ kid: newKid, jwks_keys: 1 });
    expect(await jwksKids(p2)).toEqual([newKid]);

    // The old key is gone, the new one works on both processes.
    expect((await me(p2, onP2)).statusCode).toBe(401);
    expect((await me(p2, onP1)).statusCode).toBe(200);
    expect((await me(p1, onP1)).statusCode).toBe(200);
    p1.clock.advance(KEY_RELOAD_INTERVAL_MS);
    expect((await me(p1, onP2)).statusCode).toBe(401);
    expect(await jwksKids(p1)).toEqual([newKid]);
    expect(oldKid).not.toBe(newKid);
  });
});
