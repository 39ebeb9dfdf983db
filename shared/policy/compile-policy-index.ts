/**
 * Compiles a tenant's policies into an index so one decision is a few hash lookups and never a
 * database query (DESIGN §4), whatever the number of rules.
 *
 * Each policy ROLE gets a table of its rules by app then action, built on first use. Where a rule
 * names both the app and the action, the cell holds the role's best deny and best allow over every
 * cell that can match it (the app's `*` action, the wildcard app's action, the wildcard app's `*`),
 * with how specific each is; other pairs are decided from the wildcard cells alone. Deciding for a
 * user combines the pairs of the user's roles: any deny beats any allow, and the rule named is the
 * narrowest that decided (ties: the lowest rule id).
 *
 * Users holding the same set of roles share a memo of final outcomes by (app, action), so the hot
 * path is a few lookups (device → role set, app → row, action → column, cell) whatever the number
 * of roles or rules. A role set that decides often gets a dense memo: one typed array over every
 * (app, action) the rules name, plus a row for any app and a column for any action no rule names
 * (such names are decided alike), so events naming invented apps or actions (they come from the
 * field) share cells instead of adding entries. Other role sets use a map memo, bounded per role
 * set and per index. Outcomes are built once: a decision allocates nothing.
 */
import type { BundleGrant, Effect, Severity } from '../mqtt/payloads.js';
import type { PolicyModel } from './model.js';

export const WILDCARD = '*';

export interface RuleRef {
  rule_id: string;
  policy_id: string;
  severity: Severity;
}

/** A rule's outcome: one object per rule of an index, whichever roles and cells it decides. */
type RuleOutcome = { effect: Effect; reason: 'rule'; rule: RuleRef };

/** The rules of one (app, action) cell: first deny and first allow in rule-id order. */
interface Slot {
  deny: RuleOutcome | null;
  allow: RuleOutcome | null;
}

type Grid = Map<string, Map<string, Slot>>;

export type Outcome =
  | { effect: Effect; reason: 'rule'; rule: RuleRef }
  | { effect: Effect; reason: 'default'; rule: null };

/** The best deny and allow for a cell; rank 0 (app and action named) … 3 (`*`, `*`). */
interface Pair {
  deny: Outcome | null;
  denyRank: number;
  allow: Outcome | null;
  allowRank: number;
}

const NO_RANK = 9;
const NONE: Pair = { deny: null, denyRank: NO_RANK, allow: null, allowRank: NO_RANK };

/** Best deny and allow over `slots` (most specific first; rank = position + offset). */
function pairOf(slots: ReadonlyArray<Slot | undefined>, rankOffset: number): Pair {
  let deny: RuleOutcome | null = null;
  let denyRank = NO_RANK;
  let allow: RuleOutcome | null = null;
  let allowRank = NO_RANK;
  for (let i = 0; i < slots.length; i++) {
    const s = slots[i];
    if (s?.deny && !deny) {
      deny = s.deny;
      denyRank = i + rankOffset;
    }
    if (s?.allow && !allow) {
      allow = s.allow;
      allowRank = i + rankOffset;
    }
  }
  if (!deny && !allow) return NONE;
  return { deny, denyRank, allow, allowRank };
}

interface AppEntry {
  /** Actions the role's rules name for this app, resolved over every cell that can match. */
  byAction: Map<string, Pair>;
  /** The app's `*` action cell. */
  star: Slot | undefined;
  /** Pairs for actions only wildcard cells match, by the wildcard app's action cell. */
  fallback: Map<Slot | undefined, Pair>;
}

/** The rules of one policy ROLE. */
class RoleTable {
  readonly #byApp = new Map<string, AppEntry>();
  readonly #anyByAction = new Map<string, Slot>();
  /** For apps the role has no rules for: pairs by the wildcard app's action cell. */
  readonly #unknownApp = new Map<Slot | undefined, Pair>();
  readonly #anyStar: Slot | undefined;

  constructor(grants: readonly BundleGrant[], outcomeOf: (g: BundleGrant) => RuleOutcome) {
    const grid: Grid = new Map();
    for (const g of grants) put(grid, g, outcomeOf);
    const anyApp = grid.get(WILDCARD);
    const anyStar = anyApp?.get(WILDCARD);
    for (const [action, slot] of anyApp ?? []) if (action !== WILDCARD) this.#anyByAction.set(action, slot);
    for (const [app, actions] of grid) {
      if (app === WILDCARD) continue;
      const star = actions.get(WILDCARD);
      const byAction = new Map<string, Pair>();
      for (const [action, slot] of actions) {
        if (action !== WILDCARD) byAction.set(action, pairOf([slot, star, anyApp?.get(action), anyStar], 0));
      }
      this.#byApp.set(app, { byAction, star, fallback: new Map() });
    }
    this.#anyStar = anyStar;
    this.#unknownApp.set(undefined, pairOf([undefined, undefined, anyStar], 1));
    for (const slot of this.#anyByAction.values()) this.#unknownApp.set(slot, pairOf([undefined, slot, anyStar], 1));
  }

  pair(app: string, action: string): Pair {
    const a = this.#byApp.get(app);
    if (a !== undefined) {
      const p = a.byAction.get(action);
      if (p !== undefined) return p;
      // Only wildcard cells match; built on first use (at most apps × wildcard-app actions).
      const any = this.#anyByAction.get(action);
      let f = a.fallback.get(any);
      if (f === undefined) a.fallback.set(any, (f = pairOf([a.star, any, this.#anyStar], 1)));
      return f;
    }
    return this.#unknownApp.get(this.#anyByAction.get(action))!;
  }
}

function put(grid: Grid, g: BundleGrant, outcomeOf: (g: BundleGrant) => RuleOutcome): void {
  let byAction = grid.get(g.app);
  if (!byAction) grid.set(g.app, (byAction = new Map()));
  let slot = byAction.get(g.action);
  if (!slot) byAction.set(g.action, (slot = { deny: null, allow: null }));
  if (g.effect === 'deny') {
    if (!slot.deny || g.rule_id < slot.deny.rule.rule_id) slot.deny = outcomeOf(g);
  } else if (!slot.allow || g.rule_id < slot.allow.rule.rule_id) {
    slot.allow = outcomeOf(g);
  }
}

/** Deny beats allow; then the most specific cell; then the lowest rule id. */
function decideOver(tables: readonly RoleTable[], app: string, action: string, fallback: Outcome): Outcome {
  let deny: Outcome | null = null;
  let denyRank = NO_RANK;
  let allow: Outcome | null = null;
  let allowRank = NO_RANK;
  for (let i = 0; i < tables.length; i++) {
    const p = tables[i]!.pair(app, action);
    if (p.deny !== null && (p.denyRank < denyRank || (p.denyRank === denyRank && p.deny.rule!.rule_id < deny!.rule!.rule_id))) {
      deny = p.deny;
      denyRank = p.denyRank;
    }
    if (deny === null && p.allow !== null && (p.allowRank < allowRank || (p.allowRank === allowRank && p.allow.rule!.rule_id < allow!.rule!.rule_id))) {
      allow = p.allow;
      allowRank = p.allowRank;
    }
  }
  return deny ?? allow ?? fallback;
}

/** Outcomes memoised per role set; bounded so field-supplied names cannot exhaust memory. */
const MEMO_PER_ROLE_SET = 4096;
const MEMO_PER_INDEX = 500_000;

export interface CompileOptions {
  /**
   * Memo bounds. The defaults suit live traffic, whose names come from the field. A what-if
   * replay decides names already recorded (bounded by the data) millions of times over, and
   * raises them so the long tail of (app, action) pairs is memoised too.
   */
  memoPerRoleSet?: number;
  memoPerIndex?: number;
  /** Cells of dense memo for all role sets together (0: map memos only). */
  gridCellsPerIndex?: number;
}

/**
 * The dense memo (RoleSet.grid): cells one role set may hold, cells of all role sets of one index
 * together (4 bytes each: 4 MB), and the decisions a role set makes on the map memo before it gets
 * one, so role sets that decide little (most, in a tenant where many users hold a combination of
 * their own) cost no grid. A catalogue of 300 apps × 20 actions is 6,321 cells (25 KB).
 */
const GRID_CELLS_PER_ROLE_SET = 65_536;
const GRID_CELLS_PER_INDEX = 1_048_576;
const GRID_AFTER_DECISIONS = 256;

class RoleSet {
  /** Outcome numbers by app, then action. */
  readonly memo = new Map<string, Map<string, number>>();
  size = 0;
  /**
   * The dense memo, when the rules' catalogue is small enough: outcome number + 1 by (app row,
   * action column), 0 = not decided yet. One typed array per role set instead of a map per app:
   * with thousands of role sets × apps, the maps' scattered entries cost a cache miss or two per
   * decision, which is what made many rules slower than few (bench (c)).
   */
  grid: Int32Array | null = null;
  decisions = 0;
  constructor(readonly tables: readonly RoleTable[]) {}
}

export interface PolicyIndex {
  readonly tenantId: string;
  readonly version: number;
  readonly defaultEffect: Effect;
  readonly ruleCount: number;
  /** Owning user of each device of this tenant (null = registered but unassigned). */
  ownerOf(deviceId: string): string | null | undefined;
  hasDevice(deviceId: string): boolean;
  deviceIds(): IterableIterator<string>;
  /** Decides for a user (null = device without owner → no roles → default effect). */
  decide(userId: string | null, app: string, action: string): Outcome;
  /** Decides for a device of this tenant; undefined when the tenant has no such device. */
  decideForDevice(deviceId: string, app: string, action: string): Outcome | undefined;
  /**
   * The same decision as decideForDevice, as the outcome's number in this index (-1: no such
   * device): `effectOf(n)` is its effect and `outcomeAt(n)` its outcome, rule included. A caller
   * that needs only the effect reads it from one small table, not from the deciding rule's object
   * (with 100,000 rules, tens of thousands of those, scattered over the heap: bench (c)).
   */
  decisionNumber(deviceId: string, app: string, action: string): number;
  effectOf(n: number): Effect;
  outcomeAt(n: number): Outcome;
}

/**
 * Device → owner of an inventory, shared by the indexes compiled over the same devices array (a
 * rule-side change keeps the inventory by reference: model.ts modelFromRulesSnapshot). Read-only.
 */
const ownersByInventory = new WeakMap<PolicyModel['devices'], Map<string, string | null>>();

function ownersOf(devices: PolicyModel['devices']): Map<string, string | null> {
  let owners = ownersByInventory.get(devices);
  if (!owners) {
    owners = new Map();
    for (const d of devices) owners.set(d.id, d.user_id);
    ownersByInventory.set(devices, owners);
  }
  return owners;
}

export function compilePolicyIndex(model: PolicyModel, opts: CompileOptions = {}): PolicyIndex {
  const memoPerRoleSet = opts.memoPerRoleSet ?? MEMO_PER_ROLE_SET;
  const memoPerIndex = opts.memoPerIndex ?? MEMO_PER_INDEX;
  const gridCellsPerIndex = opts.gridCellsPerIndex ?? GRID_CELLS_PER_INDEX;
  const byRole = new Map<string, BundleGrant[]>();
  for (const g of model.grants) {
    let list = byRole.get(g.role_id);
    if (!list) byRole.set(g.role_id, (list = []));
    list.push(g);
  }
  const owners = ownersOf(model.devices);
  const defaultOutcome: Outcome = { effect: model.default_effect, reason: 'default', rule: null };

  // One outcome object per rule: a decision returns the deciding rule's, so a tenant's decisions
  // touch as many outcomes as rules decide, not one per (role, app, action) pair that a rule
  // reaches (bench (c), 100,000 rules: decisions returned 20,000 distinct outcomes instead of
  // 58,000, scattered over the heap; 223–303 → 138–241 ns per decision, README).
  const ruleOutcomes: Record<Effect, Map<string, RuleOutcome>> = { allow: new Map(), deny: new Map() };
  const outcomeOf = (g: BundleGrant): RuleOutcome => {
    const byId = ruleOutcomes[g.effect];
    let out = byId.get(g.rule_id);
    if (out === undefined) {
      out = { effect: g.effect, reason: 'rule', rule: { rule_id: g.rule_id, policy_id: g.policy_id, severity: g.severity } };
      byId.set(g.rule_id, out);
    }
    return out;
  };

  /** Built on first use: a tenant's index is rebuilt on every policy change. */
  const roleTables = new Map<string, RoleTable>();
  const roleSets = new Map<string, RoleSet>();
  const userSets = new Map<string | null, RoleSet>();
  const deviceSets = new Map<string, RoleSet>();
  let memoTotal = 0;

  // Rows and columns of the dense memo: every app and every action a rule names, plus one row for
  // any app no rule names and one column for any action no rule names. An app no rule names is
  // decided by the wildcard-app cells alone, so by its action only; an action no rule names by its
  // app only (RoleTable.pair): every such name shares its row or column.
  const appRow = new Map<string, number>();
  const actionColumn = new Map<string, number>();
  for (const g of model.grants) {
    if (g.app !== WILDCARD && !appRow.has(g.app)) appRow.set(g.app, appRow.size);
    if (g.action !== WILDCARD && !actionColumn.has(g.action)) actionColumn.set(g.action, actionColumn.size);
  }
  const otherApp = appRow.size;
  const otherAction = actionColumn.size;
  const columns = otherAction + 1;
  const gridCells = (otherApp + 1) * columns;
  let gridTotal = 0;
  /**
   * Every outcome a decision has returned, numbered (the memos hold numbers), with its effect in a
   * table of its own: deciding reads the number from the memo and the effect from `effects`, both
   * small and dense; the outcome object is read only by callers that need the rule.
   */
  const outcomes: Outcome[] = [];
  const effects: Effect[] = [];
  const outcomeNumber = new Map<Outcome, number>();
  function numberOf(out: Outcome): number {
    let n = outcomeNumber.get(out);
    if (n === undefined) {
      n = outcomes.length;
      outcomes.push(out);
      effects.push(out.effect);
      outcomeNumber.set(out, n);
    }
    return n;
  }
  function tryGrid(set: RoleSet): void {
    if (gridCells <= GRID_CELLS_PER_ROLE_SET && gridTotal + gridCells <= gridCellsPerIndex) {
      set.grid = new Int32Array(gridCells);
      gridTotal += gridCells;
    }
  }

  function roleSetOf(userId: string | null): RoleSet {
    const cached = userSets.get(userId);
    if (cached) return cached;
    const roles = userId === null ? [] : [...new Set(model.user_roles.get(userId) ?? [])].filter((r) => byRole.has(r)).sort();
    const key = roles.join('\u0000');
    let set = roleSets.get(key);
    if (!set) {
      const tables = roles.map((role) => {
        let t = roleTables.get(role);
        if (!t) roleTables.set(role, (t = new RoleTable(byRole.get(role)!, outcomeOf)));
        return t;
      });
      roleSets.set(key, (set = new RoleSet(tables)));
    }
    userSets.set(userId, set);
    return set;
  }

  /** The number of the outcome `set` decides for (app, action). */
  function decideIn(set: RoleSet, app: string, action: string): number {
    const grid = set.grid;
    if (grid !== null) {
      const cell = (appRow.get(app) ?? otherApp) * columns + (actionColumn.get(action) ?? otherAction);
      const n = grid[cell]!;
      if (n !== 0) return n - 1;
      const decided = numberOf(decideOver(set.tables, app, action, defaultOutcome));
      grid[cell] = decided + 1;
      return decided;
    }
    if (++set.decisions === GRID_AFTER_DECISIONS) tryGrid(set);
    let byAction = set.memo.get(app);
    const hit = byAction?.get(action);
    if (hit !== undefined) return hit;
    const decided = numberOf(decideOver(set.tables, app, action, defaultOutcome));
    if (set.size < memoPerRoleSet && memoTotal < memoPerIndex) {
      if (byAction === undefined) set.memo.set(app, (byAction = new Map()));
      byAction.set(action, decided);
      set.size++;
      memoTotal++;
    }
    return decided;
  }

  function deviceSetOf(deviceId: string): RoleSet | undefined {
    let set = deviceSets.get(deviceId);
    if (set === undefined) {
      const owner = owners.get(deviceId);
      if (owner === undefined) return undefined;
      set = roleSetOf(owner);
      deviceSets.set(deviceId, set);
    }
    return set;
  }

  return {
    tenantId: model.tenant_id,
    version: model.version,
    defaultEffect: model.default_effect,
    ruleCount: model.grants.length,
    ownerOf: (deviceId) => owners.get(deviceId),
    hasDevice: (deviceId) => owners.has(deviceId),
    deviceIds: () => owners.keys(),
    decide: (userId, app, action) => outcomes[decideIn(roleSetOf(userId), app, action)]!,
    decideForDevice(deviceId, app, action) {
      const set = deviceSetOf(deviceId);
      return set === undefined ? undefined : outcomes[decideIn(set, app, action)];
    },
    decisionNumber(deviceId, app, action) {
      const set = deviceSetOf(deviceId);
      return set === undefined ? -1 : decideIn(set, app, action);
    },
    effectOf: (n) => effects[n]!,
    outcomeAt: (n) => outcomes[n]!,
  };
}
