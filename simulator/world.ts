/**
 * The contract between provisioning (simulator/provision.ts, which creates tenants, roles,
 * policies, users, devices, towers and tower credentials through the REST API) and fleet
 * playback (simulator/fleet.ts, which only ever reads this). Plain data, JSON-serialisable, so a
 * provisioned world can also be saved and replayed against the same deployment.
 */
import type { Scenario } from './scenario.js';

export interface WorldTenant {
  /** The scenario's tenant name (what `violations.pick[].tenant` refers to). */
  name: string;
  /** The tenant id the platform assigned: the `{tenantId}` level of every topic. */
  id: string;
  /** Every provisioned device of this tenant; usage is played only from these. */
  device_ids: string[];
  /**
   * (app, action) combos the tenant's policies deny for its device users, as provisioned
   * (see `deniedCombos` in scenario.ts). Injected violations must be drawn from this list.
   */
  denied: Array<{ app: string; action: string }>;
}

export interface WorldTower {
  /** Tower id (MQTT username; the client id is `tower-<id>`). */
  id: string;
  /** The tower's MQTT password, as issued when its credential was created. */
  password: string;
}

export interface ProvisionedWorld {
  scenario: Scenario;
  /** One entry per scenario tenant, matched by `name`. */
  tenants: WorldTenant[];
  /** In scenario order: `outages[].tower_index` indexes this array. */
  towers: WorldTower[];
}

/** Checks a world against its scenario; returns problems (empty when it is playable). */
export function checkWorld(world: ProvisionedWorld): string[] {
  const problems: string[] = [];
  const s = world.scenario;
  if (world.towers.length === 0) problems.push('towers: at least one tower is needed');
  for (const t of s.tenants) {
    const wt = world.tenants.find((x) => x.name === t.name);
    if (!wt) problems.push(`tenants: scenario tenant "${t.name}" was not provisioned`);
    else if (wt.device_ids.length === 0) problems.push(`tenants.${t.name}.device_ids: no devices`);
  }
  s.violations.pick.forEach((v, i) => {
    const wt = world.tenants.find((x) => x.name === v.tenant);
    if (wt && !wt.denied.some((d) => d.app === v.app && d.action === v.action)) {
      problems.push(`violations.pick.${i}: ${v.tenant} ${v.app}/${v.action} is not among the tenant's denied combos`);
    }
  });
  s.outages.forEach((o, i) => {
    if (o.tower_index >= world.towers.length) problems.push(`outages.${i}.tower_index: no tower ${o.tower_index} (have ${world.towers.length})`);
  });
  return problems;
}
