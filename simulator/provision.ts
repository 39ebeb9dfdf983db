/**
 * Creates a scenario's world through the public REST API, exactly as an operator and tenant
 * admins would: tenants with an owner, catalogues, roles, policies and rules, then device users
 * with their roles and devices through the bulk onboarding import (POST /onboarding/import, in
 * chunks of IMPORT_CHUNK rows, each all or nothing), towers and one fresh MQTT credential per
 * tower. Ids carry a run tag so the same scenario can be provisioned again against the same
 * deployment. Tenants get their plan (`plan_id`); rules their `remediation`/`escalation`, sent
 * only when the scenario sets them. Progress is reported through `onStep`, one line per phase
 * and per import chunk.
 */
import { randomBytes } from 'node:crypto';
import { ApiClient, ApiError } from './api-client.js';
import { deniedCombos, type Scenario, type ScenarioTenant } from './scenario.js';
import type { ProvisionedWorld, WorldTenant, WorldTower } from './world.js';

/** Rows per import request: large enough to be fast, small enough to show progress. */
export const IMPORT_CHUNK = 1000;

export interface ProvisionOptions {
  apiUrl: string;
  adminEmail: string;
  adminPassword: string;
  /** Short tag making tenant owners and device ids unique per run (default: random). */
  runTag?: string;
  onStep?: (message: string) => void;
}

/** Create endpoints answer `{ <resource>: { id, … } }`. */
type Created = Record<string, { id: string } | undefined>;

function pick<T>(body: Created, key: string): T {
  const v = body[key];
  if (!v) throw new Error(`API response has no "${key}"`);
  return v as T;
}

/** Sign-in of each provisioned tenant's owner, so a person can explore what the run produced. */
export interface TenantOwnerLogin {
  tenant: string;
  tenant_id: string;
  email: string;
  password: string;
}

export interface Provisioned {
  world: ProvisionedWorld;
  owners: TenantOwnerLogin[];
}

export async function provisionWorld(scenario: Scenario, opts: ProvisionOptions): Promise<Provisioned> {
  const tag = opts.runTag ?? randomBytes(3).toString('hex');
  const step = opts.onStep ?? (() => {});
  const operator = await ApiClient.login(opts.apiUrl, opts.adminEmail, opts.adminPassword);

  const tenants: WorldTenant[] = [];
  const owners: TenantOwnerLogin[] = [];
  for (const [ti, t] of scenario.tenants.entries()) {
    step(`tenant ${t.name}: provisioning (plan ${t.plan})`);
    const r = await provisionTenant(operator, opts.apiUrl, t, `${tag}t${ti}`, step);
    tenants.push(r.tenant);
    owners.push(r.owner);
  }

  const towers: WorldTower[] = [];
  for (let i = 0; i < scenario.towers.count; i++) {
    const id = `${scenario.towers.id_prefix}${i}`;
    try {
      await operator.post('/api/v1/towers', { id, name: `${scenario.name} tower ${i}`, ...towerSite(i, scenario.towers.count) });
    } catch (err) {
      // Towers are shared infrastructure: a second run reuses them with a fresh credential.
      if (!(err instanceof ApiError && err.status === 409)) throw err;
    }
    const cred = await operator.post<{ mqtt: { username: string; password: string } }>(`/api/v1/towers/${id}/credentials`, {});
    towers.push({ id, password: cred.mqtt.password });
    if (towers.length % 50 === 0 && towers.length < scenario.towers.count) step(`towers: ${towers.length}/${scenario.towers.count}`);
  }
  step(`towers: ${towers.length} with credentials`);
  return { world: { scenario, tenants, towers }, owners };
}

interface ImportSummary {
  users: { created: number };
  devices: { created: number };
  role_assignments: { created: number };
}

async function provisionTenant(
  operator: ApiClient,
  apiUrl: string,
  t: ScenarioTenant,
  idPrefix: string,
  step: (message: string) => void,
): Promise<{ tenant: WorldTenant; owner: TenantOwnerLogin }> {
  const domain = `${t.name.toLowerCase().replace(/_/g, '-')}.sim.edgeplane.test`;
  const ownerEmail = `owner-${idPrefix.toLowerCase()}@${domain}`;
  const ownerPassword = randomBytes(18).toString('base64url');
  const created = await operator.post<Created>('/api/v1/tenants', {
    name: t.name,
    default_effect: t.default_effect,
    plan_id: t.plan,
    owner: { email: ownerEmail, password: ownerPassword },
  });
  const tenant = pick<{ id: string }>(created, 'tenant');
  const api = await ApiClient.login(apiUrl, ownerEmail, ownerPassword);

  for (const key of t.apps) await api.post('/api/v1/apps', { key, name: key });
  for (const key of t.actions) await api.post('/api/v1/actions', { key, name: key });

  const roleIds = new Map<string, string>();
  for (const r of t.roles) roleIds.set(r.name, pick<{ id: string }>(await api.post('/api/v1/roles', { name: r.name }), 'role').id);
  const roleId = (name: string): string => {
    const id = roleIds.get(name);
    if (!id) throw new Error(`scenario refers to unknown role ${name}`);
    return id;
  };

  for (const p of t.policies) {
    const policy = pick<{ id: string }>(await api.post('/api/v1/policies', { name: p.name, severity: p.severity }), 'policy');
    for (const r of p.roles) await api.post('/api/v1/roles/policies/assign', { role_id: roleId(r), policy_id: policy.id });
    for (const rule of p.rules) {
      await api.post('/api/v1/policy-rules', {
        policy_id: policy.id,
        role_id: rule.role ? roleId(rule.role) : null,
        app: rule.app,
        action: rule.action,
        permission: rule.permission,
        ...(rule.remediation ? { remediation: rule.remediation } : {}),
        ...(rule.escalation ? { escalation: rule.escalation } : {}),
      });
    }
  }

  step(`tenant ${t.name}: ${t.apps.length} apps, ${t.actions.length} actions, ${t.roles.length} roles, ${t.policies.length} policies`);

  // Device users (keyed by e-mail), their roles (by name) and devices: the bulk onboarding path.
  const device_ids: string[] = [];
  const rows: Array<Record<string, unknown>> = [];
  for (let u = 0; u < t.users.count; u++) {
    const user = { user_email: `user${u}-${idPrefix.toLowerCase()}@${domain}`, user_name: `${t.name} user ${u}`, roles: t.users.roles };
    for (let d = 0; d < t.devices_per_user; d++) {
      const id = `${idPrefix}-u${u}-d${d}`;
      rows.push({ ...user, device_id: id, device_name: `device ${u}.${d}` });
      device_ids.push(id);
    }
  }
  const done = { rows: 0, users: 0, devices: 0, assignments: 0 };
  for (let i = 0; i < rows.length; i += IMPORT_CHUNK) {
    const chunk = rows.slice(i, i + IMPORT_CHUNK);
    const r = await api.post<ImportSummary>('/api/v1/onboarding/import', chunk);
    done.rows += chunk.length;
    done.users += r.users.created;
    done.devices += r.devices.created;
    done.assignments += r.role_assignments.created;
    step(`tenant ${t.name}: imported ${done.rows}/${rows.length} rows (${done.users} users, ${done.devices} devices, ${done.assignments} role assignments)`);
  }
  return {
    tenant: { name: t.name, id: tenant.id, device_ids, denied: deniedCombos(t) },
    owner: { tenant: t.name, tenant_id: tenant.id, email: ownerEmail, password: ownerPassword },
  };
}

/**
 * Where simulated tower `i` of `n` stands: a spiral around central Paris (~1.5 km apart), so maps
 * in the console have something to draw. Deterministic, so re-runs place towers identically.
 */
export function towerSite(i: number, n: number): { lat: number; lon: number; radius_m: number } {
  const angle = i * 2.399963; // the golden angle: an even spread
  const r = 0.015 * Math.sqrt(i + 0.5) * Math.min(4, Math.max(1, Math.sqrt(n / 10)));
  return { lat: Math.round((48.8566 + r * Math.cos(angle)) * 1e5) / 1e5, lon: Math.round((2.3522 + r * 1.5 * Math.sin(angle)) * 1e5) / 1e5, radius_m: 1500 };
}
