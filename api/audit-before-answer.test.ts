/**
 * "Acknowledged means durable" for the audit trail: a change the API answers 2xx to must not
 * lose its audit entry to a crash right after the answer. The entry of an acknowledged change is
 * written before the answer leaves; refused calls and sign-ins are still written after it (a
 * sign-in's account lookup must not change its timing). The store's audit write is held here,
 * so the test sees which side of the answer it falls on.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditRecord } from '../shared/domain.js';
import type { AuditInput } from '../shared/store/port.js';
import { OPERATOR_EMAIL, PASSWORD, createTenant, login, startHarness, type Harness, type Session } from './test-support.js';

let h: Harness;
let owner: Session;
let tenantId: string;
/** While set, audit writes wait for `release` (and say they started). */
let gate: { started: (input: AuditInput) => void; release: Promise<void> } | null = null;

beforeAll(async () => {
  h = await startHarness();
  const operator = await login(h.app, OPERATOR_EMAIL);
  ({ owner, tenantId } = await createTenant(h.app, operator, 'Alpha'));
  await h.app.auditTrail.flush();
  const record = h.store.audit.record.bind(h.store.audit);
  h.store.audit.record = async (input: AuditInput): Promise<AuditRecord> => {
    const g = gate;
    if (g) {
      g.started(input);
      await g.release;
    }
    return record(input);
  };
});

afterAll(async () => {
  gate = null;
  await h?.close();
});

/** Holds audit writes; resolves `started` with the first entry that begins. */
function holdAudit(): { started: Promise<AuditInput>; release: () => void } {
  let release!: () => void;
  let started!: (input: AuditInput) => void;
  const startedP = new Promise<AuditInput>((r) => (started = r));
  gate = { started, release: new Promise<void>((r) => (release = r)) };
  return {
    started: startedP,
    release: () => {
      gate = null;
      release();
    },
  };
}

describe('audit entries and the answer', () => {
  it('answers an acknowledged change only once its audit entry is written', async () => {
    const held = holdAudit();
    let answered = false;
    const res = h.app
      .inject({ method: 'POST', url: '/api/v1/devices', headers: owner.headers, payload: { id: 'dev-audit-1', name: 'phone' } })
      .then((r) => {
        answered = true;
        return r;
      });
    const entry = await held.started;
    expect(entry).toMatchObject({ action: 'devices.create', tenant_id: tenantId, status_code: 201, resource_id: 'dev-audit-1' });
    // The write is held: the answer must still be waiting for it.
    await new Promise<void>((r) => setImmediate(r));
    expect(answered).toBe(false);
    held.release();
    expect((await res).statusCode).toBe(201);
    // Written before the answer: there without waiting for the trail.
    const page = await h.store.audit.list(tenantId, { resource_id: 'dev-audit-1' });
    expect(page.items.map((r) => r.action)).toEqual(['devices.create']);
  });

  it('answers a refused call and a sign-in without waiting for their entries', async () => {
    const held = holdAudit();
    const refused = await h.app.inject({ method: 'POST', url: '/api/v1/devices', headers: owner.headers, payload: { id: 'dev-audit-2' } });
    expect(refused.statusCode).toBe(400);
    expect((await held.started).status_code).toBe(400);
    const signIn = await h.app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { email: 'owner@alpha.test', password: PASSWORD } });
    expect(signIn.statusCode).toBe(200);
    held.release();
    await h.app.auditTrail.flush();
    const actions = (await h.store.audit.list(tenantId, { limit: 5 })).items.map((r) => r.action);
    expect(actions).toEqual(expect.arrayContaining(['auth.login', 'devices.create']));
  });
});
