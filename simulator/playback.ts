/**
 * The deterministic part of playback: which device uses which app at which offset, when the
 * violations happen and on which tower each device is seen. Given the same world and seed the
 * sequence is identical; only wall-clock timing differs between runs.
 */
import type { RemediationType } from '../shared/domain.js';
import { createPrng, weightedPicker, type Prng } from './prng.js';
import { expectedRemediations } from './scenario.js';
import type { ProvisionedWorld } from './world.js';

export interface PlannedEvent {
  tenantIndex: number;
  deviceId: string;
  app: string;
  action: string;
  towerIndex: number;
  violation: boolean;
  /** For an injected violation whose tenant and deciding rule call for a remediation command, its type. */
  remediation: RemediationType | null;
}

interface PlannedDevice {
  tenantIndex: number;
  deviceId: string;
  towerIndex: number;
}

export class EventPlan {
  readonly durationS: number;
  /** Offsets (seconds) of the injected violations, ascending. */
  readonly violationTimes: number[];
  readonly #prng: Prng;
  readonly #devices: PlannedDevice[];
  readonly #byTenant: PlannedDevice[][];
  readonly #mix: Array<() => { app: string; action: string }>;
  readonly #rate: number;
  readonly #poisson: boolean;
  readonly #picks: Array<{ tenantIndex: number; app: string; action: string; remediation: RemediationType | null }>;
  #nextViolation = 0;
  #clock = 0;

  constructor(world: ProvisionedWorld) {
    const s = world.scenario;
    this.#prng = createPrng(s.seed);
    this.durationS = s.duration_s;
    this.#rate = s.rate_eps;
    this.#poisson = s.arrival === 'poisson';
    // World tenants in scenario order, so tenant indexes are stable across provisioning runs.
    const tenants = s.tenants.map((t) => {
      const wt = world.tenants.find((x) => x.name === t.name);
      if (!wt) throw new Error(`tenant "${t.name}" is not in the provisioned world`);
      return { scenario: t, world: wt };
    });
    this.#byTenant = tenants.map(() => []);
    this.#devices = [];
    tenants.forEach((t, tenantIndex) => {
      for (const deviceId of t.world.device_ids) {
        // A device has a home tower: usage from one handset is seen by one cell most of the time.
        const d = { tenantIndex, deviceId, towerIndex: this.#prng.int(world.towers.length) };
        this.#devices.push(d);
        this.#byTenant[tenantIndex]!.push(d);
      }
    });
    this.#mix = tenants.map((t) => weightedPicker(t.scenario.mix, (m) => m.weight, this.#prng));
    const remediations = expectedRemediations(s);
    this.#picks = s.violations.pick.map((v, i) => ({
      tenantIndex: tenants.findIndex((t) => t.scenario.name === v.tenant),
      app: v.app,
      action: v.action,
      remediation: remediations[i]?.expected ? remediations[i]!.remediation!.type : null,
    }));
    this.violationTimes = Array.from({ length: s.violations.count }, () => this.#prng.next() * s.duration_s).sort((a, b) => a - b);
  }

  /** Offset (seconds) of the next regular arrival; advances the arrival clock. */
  nextArrival(): number {
    this.#clock += this.#poisson ? this.#prng.exponential(this.#rate) : 1 / this.#rate;
    return this.#clock;
  }

  /** A regular event: a random device (tenants weighted by population), its tenant's mix. */
  nextEvent(): PlannedEvent {
    const d = this.#devices[this.#prng.int(this.#devices.length)]!;
    const m = this.#mix[d.tenantIndex]!();
    return { tenantIndex: d.tenantIndex, deviceId: d.deviceId, app: m.app, action: m.action, towerIndex: d.towerIndex, violation: false, remediation: null };
  }

  /** The next injected violation: picks in turn, a random device of the picked tenant. */
  nextViolation(): PlannedEvent {
    const pick = this.#picks[this.#nextViolation++ % this.#picks.length]!;
    const d = this.#prng.pick(this.#byTenant[pick.tenantIndex]!);
    return {
      tenantIndex: pick.tenantIndex,
      deviceId: d.deviceId,
      app: pick.app,
      action: pick.action,
      towerIndex: d.towerIndex,
      violation: true,
      remediation: pick.remediation,
    };
  }
}
