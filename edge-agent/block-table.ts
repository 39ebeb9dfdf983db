/**
 * The remediations in force at one tower, in memory: pure data structure, no clock, no I/O (the
 * PersistentEnforcer owns the clock, the timer and the state file). Indexed by (tenant, device)
 * so the per-event lookup on the agent's hot path is a couple of hash probes.
 */
import type { BlockingCommandType, BlockStatus } from './enforcer.js';

/** What a tower holds: blocks, and throttles (recorded, shaped by the tower's traffic control). */
export type HeldType = BlockingCommandType | 'throttle';

export interface ActiveBlock {
  tenant_id: string;
  device_id: string;
  /** null: every app of the device (block_device, quarantine, a device-wide throttle). */
  app: string | null;
  type: HeldType;
  /** The command that put it in force. */
  command_id: string;
  /** Applied at this tower (epoch ms). */
  since: number;
  /** Lifts by itself at this time (epoch ms). */
  until: number;
}

export type LiftCause = 'expired' | 'unblocked';

/** Device-level holds that unblock_device removes. */
const DEVICE_BLOCKS: readonly HeldType[] = ['block_device', 'quarantine'];

const deviceKey = (tenantId: string, deviceId: string): string => `${tenantId}\u0000${deviceId}`;
const slotKey = (type: HeldType, app: string | null): string => `${type}\u0000${app ?? ''}`;

export class BlockTable {
  readonly #byDevice = new Map<string, Map<string, ActiveBlock>>();
  #size = 0;

  get size(): number {
    return this.#size;
  }

  /**
   * Puts a hold in force. A hold of the same kind already in force for the same target keeps
   * whichever lasts longer: a second, shorter command never shortens a block (only an unblock
   * does). Returns an undo for when the change cannot be saved.
   */
  put(block: ActiveBlock): () => void {
    const key = slotKey(block.type, block.app);
    const slots = this.#slots(block.tenant_id, block.device_id, true);
    const previous = slots.get(key);
    if (previous && previous.until >= block.until) return () => {};
    this.#set(slots, key, block);
    return () => {
      const now = this.#slots(block.tenant_id, block.device_id, false);
      if (now?.get(key) !== block) return;
      if (previous) this.#set(now, key, previous);
      else this.#delete(block.tenant_id, block.device_id, key);
    };
  }

  /** Whether a hold of this kind is in force (or not yet expired) for this target. */
  holds(tenantId: string, deviceId: string, type: HeldType, app: string | null): boolean {
    return this.#byDevice.get(deviceKey(tenantId, deviceId))?.has(slotKey(type, app)) ?? false;
  }

  /** Removes the device-level blocks (block_device, quarantine) of a device; returns them. */
  liftDevice(tenantId: string, deviceId: string): ActiveBlock[] {
    return DEVICE_BLOCKS.flatMap((type) => this.#take(tenantId, deviceId, slotKey(type, null)));
  }

  /** Removes the block_app hold of (device, app); returns it (or nothing). */
  liftApp(tenantId: string, deviceId: string, app: string): ActiveBlock[] {
    return this.#take(tenantId, deviceId, slotKey('block_app', app));
  }

  /** Puts removed holds back (undo of a lift that could not be saved). */
  restore(blocks: readonly ActiveBlock[]): void {
    for (const b of blocks) {
      const slots = this.#slots(b.tenant_id, b.device_id, true);
      if (!slots.has(slotKey(b.type, b.app))) this.#set(slots, slotKey(b.type, b.app), b);
    }
  }

  /** The block that denies this usage at `now`, if any (throttles never deny). */
  blocking(tenantId: string, deviceId: string, app: string, now: number): BlockStatus | null {
    if (this.#size === 0) return null;
    const slots = this.#byDevice.get(deviceKey(tenantId, deviceId));
    if (!slots) return null;
    for (const key of [slotKey('block_device', null), slotKey('quarantine', null), slotKey('block_app', app)]) {
      const b = slots.get(key);
      // `until` is checked here too: a late expiry timer must never extend a block.
      if (b && b.until > now && b.type !== 'throttle') return { blocked: true, command_id: b.command_id, type: b.type };
    }
    return null;
  }

  /** Removes and returns every hold whose `until` is at or before `now`. */
  expire(now: number): ActiveBlock[] {
    const out: ActiveBlock[] = [];
    for (const slots of [...this.#byDevice.values()]) {
      for (const [key, b] of [...slots]) {
        if (b.until <= now) out.push(...this.#take(b.tenant_id, b.device_id, key));
      }
    }
    return out;
  }

  /** The earliest `until` of all holds, or null when nothing is held. */
  earliestUntil(): number | null {
    let min: number | null = null;
    for (const slots of this.#byDevice.values()) for (const b of slots.values()) if (min === null || b.until < min) min = b.until;
    return min;
  }

  all(): ActiveBlock[] {
    return [...this.#byDevice.values()].flatMap((slots) => [...slots.values()]).map((b) => ({ ...b }));
  }

  clear(): void {
    this.#byDevice.clear();
    this.#size = 0;
  }

  #slots(tenantId: string, deviceId: string, create: true): Map<string, ActiveBlock>;
  #slots(tenantId: string, deviceId: string, create: false): Map<string, ActiveBlock> | undefined;
  #slots(tenantId: string, deviceId: string, create: boolean): Map<string, ActiveBlock> | undefined {
    const k = deviceKey(tenantId, deviceId);
    let slots = this.#byDevice.get(k);
    if (!slots && create) this.#byDevice.set(k, (slots = new Map()));
    return slots;
  }

  #set(slots: Map<string, ActiveBlock>, key: string, block: ActiveBlock): void {
    if (!slots.has(key)) this.#size++;
    slots.set(key, block);
  }

  #take(tenantId: string, deviceId: string, key: string): ActiveBlock[] {
    const b = this.#byDevice.get(deviceKey(tenantId, deviceId))?.get(key);
    if (!b) return [];
    this.#delete(tenantId, deviceId, key);
    return [b];
  }

  #delete(tenantId: string, deviceId: string, key: string): void {
    const k = deviceKey(tenantId, deviceId);
    const slots = this.#byDevice.get(k);
    if (!slots?.delete(key)) return;
    this.#size--;
    if (slots.size === 0) this.#byDevice.delete(k);
  }
}
