/**
 * Audit: the memory bound of the in-process RemediationState (the embedded mode's). It was an LRU
 * over 100,000 keys per map: with more keys than that in use (many devices violating, or one
 * tower naming fresh device ids), a block still in force was pushed out by newer keys and the
 * device's next violation was remediated again. Now only what has ended goes first; live entries
 * go only when they alone fill the bound, and that is reported. Counts, not times.
 */
import { describe, expect, it } from 'vitest';
import { InProcessRemediationState, type ActionKey, type ViolationKey } from './remediation-state.js';

const T0 = 1_700_000_000_000;
const BLOCK: ActionKey = { tenant_id: 'ten-a', tower_id: 'tw-1', device_id: 'dev-1', type: 'block_app', app: 'dropbox' };
const WINDOW: ViolationKey = { tenant_id: 'ten-a', tower_id: 'tw-1', device_id: 'dev-1', rule_id: 'r1' };
const MAX = 1_000;

function recorder() {
  const dropped: Array<{ what: string; n: number }> = [];
  return { dropped, onLiveDropped: (what: string, n: number) => dropped.push({ what, n }) };
}

describe('in-process remediation state: memory bound', () => {
  it('a block in force outlives any number of newer keys whose blocks ended', async () => {
    const r = recorder();
    const state = new InProcessRemediationState({ maxKeys: MAX, onLiveDropped: r.onLiveDropped });
    expect((await state.claimAction(BLOCK, 'cmd-1', T0, T0 + 600_000)).granted).toBe(true);
    // Five times the bound of other devices' short blocks, each over before the next one.
    for (let i = 0; i < 5 * MAX; i++) {
      await state.claimAction({ ...BLOCK, device_id: `d${i}` }, `c${i}`, T0 + 1 + i, T0 + 2 + i);
    }
    expect(await state.claimAction(BLOCK, 'cmd-2', T0 + 10 * MAX, T0 + 700_000)).toEqual({ granted: false, holder: 'cmd-1' });
    expect(r.dropped).toEqual([]);
  });

  it('a window still counting outlives newer keys whose windows ended', async () => {
    const r = recorder();
    const state = new InProcessRemediationState({ maxKeys: MAX, onLiveDropped: r.onLiveDropped });
    expect(await state.countViolation(WINDOW, 'e1', T0, 600_000)).toBe(1);
    expect(await state.countViolation(WINDOW, 'e2', T0 + 1, 600_000)).toBe(2);
    for (let i = 0; i < 5 * MAX; i++) await state.countViolation({ ...WINDOW, device_id: `d${i}` }, `x${i}`, T0 + 2 + i, 1);
    expect(await state.countViolation(WINDOW, 'e3', T0 + 10 * MAX, 600_000)).toBe(3);
    expect(r.dropped).toEqual([]);
  });

  it('live entries beyond the bound: those ending soonest go, reported, and the longest block stays', async () => {
    const r = recorder();
    const state = new InProcessRemediationState({ maxKeys: MAX, onLiveDropped: r.onLiveDropped });
    expect((await state.claimAction(BLOCK, 'cmd-1', T0, T0 + 3_600_000)).granted).toBe(true);
    // Twice the bound of blocks, all still in force, each ending later than the one before.
    const others = 2 * MAX;
    for (let i = 0; i < others; i++) {
      await state.claimAction({ ...BLOCK, device_id: `d${i}` }, `c${i}`, T0 + 1, T0 + 600_000 + i);
    }
    const forgotten = r.dropped.reduce((n, d) => n + d.n, 0);
    expect(r.dropped.every((d) => d.what === 'actions')).toBe(true);
    expect(forgotten).toBeGreaterThanOrEqual(others + 1 - MAX);
    expect(await state.claimAction(BLOCK, 'cmd-2', T0 + 2, T0 + 700_000)).toEqual({ granted: false, holder: 'cmd-1' });
    // The newest block (ending last) is kept; the oldest other block (ending first) was dropped.
    expect((await state.claimAction({ ...BLOCK, device_id: `d${others - 1}` }, 'z', T0 + 2, T0 + 700_000)).granted).toBe(false);
    expect((await state.claimAction({ ...BLOCK, device_id: 'd0' }, 'z', T0 + 2, T0 + 700_000)).granted).toBe(true);
  });
});
