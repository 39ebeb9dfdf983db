/**
 * An Enforcer that holds remediation state at the tower and keeps it on disk, so blocks survive
 * an agent restart and a command redelivered after the restart is not applied twice.
 *
 * - block_device and quarantine block every app of the device; block_app blocks (device, app).
 *   All three need `duration_s` and lift by themselves when it ends (a timer for the earliest
 *   expiry; `isBlocked` also compares with the clock, so a late timer never over-blocks).
 * - unblock_device lifts the device-level blocks, unblock_app the (device, app) block; lifting
 *   what is not in force is still 'applied' (the desired state holds).
 * - throttle is recorded with its expiry but never denies here: shaping is done by the tower's
 *   traffic control, which reads this state; the agent only records it.
 * - notify has nothing to hold and is acked 'applied'.
 * - At most `maxBlocks` holds are in force at a time: a block or throttle that would add one more
 *   is acked 'failed', reason 'too many blocks in force', and counted (`refusedFull`). Renewing a
 *   hold already in force is still applied. Without the cap a flood of blocks for distinct
 *   devices (a hostile or buggy cloud, a replayed command stream) grew the table, and the state
 *   file rewritten before every ack, with no bound but each block's duration.
 * - A block issued before an unblock of its target that was already applied (delivered out of
 *   order: a cloud retry, a broker node failing over) is acked 'failed', reason 'superseded by a
 *   later unblock', and never put in force: the later unblock is the cloud's intent. The issue
 *   times of the last LIFTS_KEPT unblocks are remembered, and saved with the state until the
 *   unblock's own expiry: a block issued before it expires no later than it does (the cloud gives
 *   every command the same time to live), so a late block arriving after an agent restart is
 *   still refused, and the file holds only the lifts that can still matter.
 *
 * The file is rewritten atomically (write a temp file, fsync, rename) after every change and
 * before the command is acked, so an 'applied' ack means "still in force after a restart". It
 * also keeps the results of the last `resultCacheSize` command ids. A corrupt file is moved
 * aside (`<file>.corrupt-<ts>`) and the agent starts empty: a tower must come up regardless.
 */
import { readFile, rename } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import type { Command, Decision } from '../shared/mqtt/payloads.js';
import { makeDirectory, replaceFile } from '../shared/atomic-file.js';
import { BlockTable, type ActiveBlock, type HeldType, type LiftCause } from './block-table.js';
import { LruMap } from './lru.js';
import { CoalescedWrites } from './coalesced-writes.js';
import type { BlockStatus, CommandResult, Enforcer } from './enforcer.js';

export type { ActiveBlock, HeldType, LiftCause } from './block-table.js';

export interface PersistentEnforcerOptions {
  /** The JSON state file; its directory is created when missing. */
  stateFile: string;
  /** Clock for expiries (default Date.now, read at each call so fake timers apply). */
  now?: () => number;
  /** A hold ended: its duration passed (also found at load) or an unblock command lifted it. */
  onLifted?: (block: ActiveBlock, cause: LiftCause) => void;
  /** Saving the state failed outside a command (an expiry); commands report it in their ack. */
  onError?: (err: Error) => void;
  /** Command results remembered across restarts (default 1024). */
  resultCacheSize?: number;
  /** Holds (blocks and throttles) in force at most (default DEFAULT_MAX_BLOCKS). */
  maxBlocks?: number;
  /** A hold was refused for `maxBlocks`: called on the first refusal and every 1,000th after it. */
  onFull?: (info: { refused: number; maxBlocks: number }) => void;
}

/** Holds in force at most, by default: far more than a tower serves devices, and a state file of ~20 MB. */
export const DEFAULT_MAX_BLOCKS = 100_000;

export type LoadOutcome =
  | { state: 'empty' }
  | { state: 'loaded'; blocks: number; results: number }
  | { state: 'corrupt'; error: string; movedTo: string | null };

const BlockSchema = z.object({
  tenant_id: z.string().min(1),
  device_id: z.string().min(1),
  app: z.string().min(1).nullable(),
  type: z.enum(['block_device', 'block_app', 'quarantine', 'throttle']),
  command_id: z.string().min(1),
  since: z.number().int(),
  until: z.number().int(),
});
const StoredResultSchema = z.object({
  command_id: z.string().min(1),
  tenant_id: z.string().min(1),
  status: z.enum(['applied', 'failed']),
  reason: z.string().optional(),
});
const LiftSchema = z.object({
  tenant_id: z.string().min(1),
  device_id: z.string().min(1),
  /** null: the device-level holds were lifted (unblock_device). */
  app: z.string().nullable(),
  issued_at: z.number().int(),
  /** The unblock's expiry: after it no block issued before the unblock can still arrive unexpired. */
  keep_until: z.number().int(),
});
type Lift = z.infer<typeof LiftSchema>;
// `lifts` is optional: files written before it was kept load as they are, and an older agent reading
// a newer file ignores the key (zod drops unknown keys), so v stays 1.
const StateSchema = z.object({ v: z.literal(1), blocks: z.array(BlockSchema), results: z.array(StoredResultSchema), lifts: z.array(LiftSchema).optional() });
type StoredResult = z.infer<typeof StoredResultSchema>;

/** setTimeout's ceiling (~24.8 days); a longer block re-arms the timer when it fires. */
const MAX_TIMER_MS = 2_147_483_647;

/** Unblock targets whose latest issue time is remembered (see #superseded). */
const LIFTS_KEPT = 16_384;

/** What an unblock lifts, and what lifts a block: the device's device-level holds, or one app's block. */
const liftKey = (tenantId: string, c: Pick<Command, 'type' | 'device_id' | 'app'>): string | null => {
  if (c.type === 'unblock_device' || c.type === 'block_device' || c.type === 'quarantine') return `${tenantId}\u0000${c.device_id}\u0000`;
  if (c.type === 'unblock_app' || c.type === 'block_app') return `${tenantId}\u0000${c.device_id}\u0000app\u0000${c.app ?? ''}`;
  return null;
};

const liftKeyOf = (l: Lift): string =>
  liftKey(l.tenant_id, l.app === null ? { type: 'unblock_device', device_id: l.device_id } : { type: 'unblock_app', device_id: l.device_id, app: l.app })!;

interface Change {
  result: CommandResult;
  undo: () => void;
  lifted: ActiveBlock[];
}

export class PersistentEnforcer implements Enforcer {
  readonly #file: string;
  readonly #now: () => number;
  readonly #opts: PersistentEnforcerOptions;
  readonly #maxResults: number;
  readonly #maxBlocks: number;
  readonly #table = new BlockTable();
  readonly #results = new Map<string, StoredResult>();
  /** Per unblock target, the latest unblock applied to it. */
  readonly #lifts = new LruMap<string, Lift>(LIFTS_KEPT);
  #loaded = false;
  #closed = false;
  #timer: NodeJS.Timeout | undefined;
  /** Writes of the state file, coalesced: changes made during one go out together in the next. */
  readonly #writes = new CoalescedWrites(async () => {
    const now = this.#now();
    const lifts = [...this.#lifts.values()].filter((l) => l.keep_until > now);
    const body = JSON.stringify({ v: 1, blocks: this.#table.all(), results: [...this.#results.values()], lifts });
    await makeDirectory(dirname(this.#file), { mode: 0o700 });
    await replaceFile(this.#file, body, { sync: true });
  });
  #refusedFull = 0;

  constructor(opts: PersistentEnforcerOptions) {
    this.#opts = opts;
    this.#file = opts.stateFile;
    this.#now = opts.now ?? (() => Date.now());
    this.#maxResults = opts.resultCacheSize ?? 1024;
    this.#maxBlocks = opts.maxBlocks ?? DEFAULT_MAX_BLOCKS;
  }

  /** Blocks and throttles refused because `maxBlocks` holds were in force. */
  get refusedFull(): number {
    return this.#refusedFull;
  }

  /** Reads the state file; call once before use. Never throws (see LoadOutcome). */
  async load(): Promise<LoadOutcome> {
    this.#table.clear();
    this.#results.clear();
    this.#lifts.clear();
    let outcome: LoadOutcome;
    try {
      const text = await readFile(this.#file, 'utf8');
      const state = StateSchema.parse(JSON.parse(text));
      for (const b of state.blocks) this.#table.put(b);
      for (const r of state.results) this.#remember(r);
      const now = this.#now();
      for (const l of state.lifts ?? []) if (l.keep_until > now) this.#lifts.set(liftKeyOf(l), l);
      outcome = { state: 'loaded', blocks: this.#table.size, results: this.#results.size };
    } catch (err) {
      outcome = isNotFound(err) ? { state: 'empty' } : await this.#moveAside(err);
    }
    this.#loaded = true;
    // Blocks whose time ran out while the agent was down lift now.
    this.#liftExpired();
    this.#arm();
    return outcome;
  }

  /** Decisions are enforced by the tower equipment; there is nothing to hold for them here. */
  applyDecision(_tenantId: string | null, _decision: Decision): void {}

  async applyCommand(tenantId: string, command: Command): Promise<CommandResult> {
    const earlier = this.previousResult(tenantId, command.id);
    if (earlier) return earlier;
    if (this.#closed) return { status: 'failed', reason: 'enforcer is closed' };
    if (!this.#loaded) return { status: 'failed', reason: 'enforcer state is not loaded' };
    const now = this.#now();
    const change = this.#change(tenantId, command, now);
    const stored: StoredResult = { command_id: command.id, tenant_id: tenantId, ...change.result };
    this.#remember(stored);
    // Saved with the change, so the guard against a late block holds across a restart too.
    const undoLift = change.result.status === 'applied' && (command.type === 'unblock_device' || command.type === 'unblock_app') ? this.#noteLift(tenantId, command) : () => {};
    try {
      await this.#save();
    } catch (err) {
      change.undo();
      undoLift();
      this.#results.delete(command.id);
      this.#arm();
      return { status: 'failed', reason: `state not saved: ${toError(err).message}` };
    }
    this.#arm();
    for (const b of change.lifted) this.#opts.onLifted?.(b, 'unblocked');
    return change.result;
  }

  previousResult(tenantId: string, commandId: string): CommandResult | undefined {
    const r = this.#results.get(commandId);
    if (!r || r.tenant_id !== tenantId) return undefined;
    return r.reason === undefined ? { status: r.status } : { status: r.status, reason: r.reason };
  }

  isBlocked(tenantId: string, deviceId: string, app: string): BlockStatus | null {
    return this.#table.blocking(tenantId, deviceId, app, this.#now());
  }

  /** Holds in force (blocks and throttles), copies. */
  activeBlocks(): ActiveBlock[] {
    const now = this.#now();
    return this.#table.all().filter((b) => b.until > now);
  }

  /** Clears the expiry timer and waits for a pending write. The state stays on disk. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#writes.settled();
  }

  // --- state changes ---------------------------------------------------------------------------

  #change(tenantId: string, c: Command, now: number): Change {
    const none = (result: CommandResult): Change => ({ result, undo: () => {}, lifted: [] });
    if (c.expires_at < now) return none({ status: 'failed', reason: 'expired' });
    switch (c.type) {
      case 'block_device':
      case 'quarantine':
      case 'block_app':
      case 'throttle': {
        if (c.type === 'block_app' && c.app === undefined) return none({ status: 'failed', reason: 'app required for block_app' });
        if (c.duration_s === undefined) return none({ status: 'failed', reason: 'duration_s required' });
        // Its end must be a time the state file can hold: the contract takes any duration_s up to
        // 2^53 s, but `until` past 2^53 ms is no integer the state's schema reads back, so the
        // next start found the file corrupt, moved it aside and dropped every block and result.
        if (!Number.isSafeInteger(now + c.duration_s * 1000)) return none({ status: 'failed', reason: 'duration_s out of range' });
        if (this.#superseded(tenantId, c)) return none({ status: 'failed', reason: 'superseded by a later unblock' });
        // Device-level holds ignore an app the cloud may send for context.
        const app = c.type === 'block_app' || c.type === 'throttle' ? (c.app ?? null) : null;
        if (this.#full(tenantId, c.device_id, c.type, app)) {
          if (++this.#refusedFull === 1 || this.#refusedFull % 1000 === 0) this.#opts.onFull?.({ refused: this.#refusedFull, maxBlocks: this.#maxBlocks });
          return none({ status: 'failed', reason: `too many blocks in force (${this.#maxBlocks})` });
        }
        const block: ActiveBlock = {
          tenant_id: tenantId,
          device_id: c.device_id,
          app,
          type: c.type,
          command_id: c.id,
          since: now,
          until: now + c.duration_s * 1000,
        };
        return { result: { status: 'applied' }, undo: this.#table.put(block), lifted: [] };
      }
      case 'unblock_device':
      case 'unblock_app': {
        if (c.type === 'unblock_app' && c.app === undefined) return none({ status: 'failed', reason: 'app required for unblock_app' });
        const lifted = c.type === 'unblock_app' ? this.#table.liftApp(tenantId, c.device_id, c.app ?? '') : this.#table.liftDevice(tenantId, c.device_id);
        const result: CommandResult = lifted.length > 0 ? { status: 'applied' } : { status: 'applied', reason: 'no block in force' };
        return { result, undo: () => this.#table.restore(lifted), lifted };
      }
      case 'notify':
        return none({ status: 'applied' });
    }
  }

  /** Putting this hold in force would exceed `maxBlocks` (holds whose time ran out are lifted first). */
  #full(tenantId: string, deviceId: string, type: HeldType, app: string | null): boolean {
    if (this.#table.size < this.#maxBlocks || this.#table.holds(tenantId, deviceId, type, app)) return false;
    this.#liftExpired();
    return this.#table.size >= this.#maxBlocks;
  }

  /** A block issued before the last unblock applied to its target. */
  #superseded(tenantId: string, c: Command): boolean {
    const key = liftKey(tenantId, c);
    const lifted = key === null ? undefined : this.#lifts.get(key);
    return lifted !== undefined && c.issued_at < lifted.issued_at;
  }

  /** Remembers an applied unblock (the latest per target); returns how to take it back. */
  #noteLift(tenantId: string, c: Command): () => void {
    const key = liftKey(tenantId, c)!;
    const before = this.#lifts.get(key);
    if (before !== undefined && before.issued_at >= c.issued_at) return () => {};
    const app = c.type === 'unblock_app' ? (c.app ?? null) : null;
    this.#lifts.set(key, { tenant_id: tenantId, device_id: c.device_id, app, issued_at: c.issued_at, keep_until: c.expires_at });
    return () => (before === undefined ? this.#lifts.delete(key) : this.#lifts.set(key, before));
  }

  #remember(r: StoredResult): void {
    this.#results.delete(r.command_id);
    this.#results.set(r.command_id, r);
    while (this.#results.size > this.#maxResults) {
      const oldest = this.#results.keys().next();
      if (oldest.done) break;
      this.#results.delete(oldest.value);
    }
  }

  #liftExpired(): void {
    const lifted = this.#table.expire(this.#now());
    if (lifted.length === 0) return;
    this.#save().catch((err: unknown) => this.#opts.onError?.(toError(err)));
    for (const b of lifted) this.#opts.onLifted?.(b, 'expired');
  }

  /** One timer, for the earliest expiry. */
  #arm(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    const next = this.#table.earliestUntil();
    if (next === null || this.#closed) return;
    const delay = Math.min(MAX_TIMER_MS, Math.max(0, next - this.#now()));
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#liftExpired();
      this.#arm();
    }, delay);
    this.#timer.unref();
  }

  // --- file ------------------------------------------------------------------------------------

  /** Resolves once a write that started after this call has completed (see #writes). */
  #save(): Promise<void> {
    return this.#writes.request();
  }

  async #moveAside(err: unknown): Promise<LoadOutcome> {
    const error = err instanceof z.ZodError ? `invalid state: ${err.issues[0]?.path.join('.') ?? ''} ${err.issues[0]?.message ?? ''}`.trim() : toError(err).message;
    const movedTo = `${this.#file}.corrupt-${this.#now()}`;
    try {
      await rename(this.#file, movedTo);
      return { state: 'corrupt', error, movedTo };
    } catch {
      return { state: 'corrupt', error, movedTo: null };
    }
  }
}

/** Where an agent with option `stateDir` keeps its tower's remediation state. */
export function enforcerStateFile(stateDir: string, towerId: string): string {
  return join(stateDir, `enforcer-${towerId}.json`);
}

function isNotFound(err: unknown): boolean {
  return err instanceof Error && (err as NodeJS.ErrnoException).code === 'ENOENT';
}

function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
