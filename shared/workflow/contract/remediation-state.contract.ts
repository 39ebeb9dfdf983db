/** Contract of the RemediationState port: run against the in-process and the Redis adapter. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ActionKey, RemediationState, ViolationKey } from '../remediation-state.js';

export interface RemediationStateHarness {
  state: RemediationState;
  cleanup(): Promise<void>;
}

const T0 = 1_700_000_000_000;
const V: ViolationKey = { tenant_id: 'ten-a', tower_id: 'tw-1', device_id: 'dev-1', rule_id: 'r1' };
const A: ActionKey = { tenant_id: 'ten-a', tower_id: 'tw-1', device_id: 'dev-1', type: 'block_app', app: 'dropbox' };

export function describeRemediationStateContract(name: string, open: () => Promise<RemediationStateHarness>): void {
  describe(`RemediationState contract: ${name}`, () => {
    let h: RemediationStateHarness;
    beforeEach(async () => {
      h = await open();
    });
    afterEach(async () => {
      await h.cleanup();
    });

    it('counts distinct violations inside the window, each event id once', async () => {
      expect(await h.state.countViolation(V, 'e1', T0, 60_000)).toBe(1);
      expect(await h.state.countViolation(V, 'e1', T0, 60_000)).toBe(1);
      expect(await h.state.countViolation(V, 'e2', T0 + 1000, 60_000)).toBe(2);
      // A redelivery of e2 later on still counts once.
      expect(await h.state.countViolation(V, 'e2', T0 + 2000, 60_000)).toBe(2);
      // e1 and e2 fall out of the window.
      expect(await h.state.countViolation(V, 'e3', T0 + 61_500, 60_000)).toBe(1);
    });

    it('keeps windows apart by tenant, tower, device and rule, and reset starts over', async () => {
      await h.state.countViolation(V, 'e1', T0, 60_000);
      await h.state.countViolation(V, 'e2', T0, 60_000);
      for (const other of [
        { ...V, tenant_id: 'ten-b' },
        { ...V, tower_id: 'tw-2' },
        { ...V, device_id: 'dev-2' },
        { ...V, rule_id: 'r2' },
      ]) {
        expect(await h.state.countViolation(other, 'e9', T0, 60_000)).toBe(1);
      }
      await h.state.resetViolations(V);
      expect(await h.state.countViolation(V, 'e3', T0 + 10, 60_000)).toBe(1);
    });

    it('grants an action to one owner while it is in force; the same owner again is granted', async () => {
      expect(await h.state.claimAction(A, 'cmd-1', T0, T0 + 600_000)).toEqual({ granted: true, holder: 'cmd-1' });
      expect(await h.state.claimAction(A, 'cmd-2', T0 + 1000, T0 + 601_000)).toEqual({ granted: false, holder: 'cmd-1' });
      expect(await h.state.claimAction(A, 'cmd-1', T0 + 2000, T0 + 600_000)).toEqual({ granted: true, holder: 'cmd-1' });
      // Once it ended, someone else may claim it.
      expect(await h.state.claimAction(A, 'cmd-3', T0 + 600_000, T0 + 1_200_000)).toEqual({ granted: true, holder: 'cmd-3' });
    });

    it('an action in force at one tower does not hold the same action at another', async () => {
      expect((await h.state.claimAction(A, 'cmd-1', T0, T0 + 600_000)).granted).toBe(true);
      expect((await h.state.claimAction({ ...A, tower_id: 'tw-2' }, 'cmd-2', T0, T0 + 600_000)).granted).toBe(true);
      expect((await h.state.claimAction({ ...A, app: 'slack' }, 'cmd-3', T0, T0 + 600_000)).granted).toBe(true);
      expect((await h.state.claimAction({ ...A, tenant_id: 'ten-b' }, 'cmd-4', T0, T0 + 600_000)).granted).toBe(true);
      expect((await h.state.claimAction({ ...A, type: 'block_device', app: null }, 'cmd-5', T0, T0 + 600_000)).granted).toBe(true);
      expect((await h.state.claimAction(A, 'cmd-6', T0, T0 + 600_000)).granted).toBe(false);
    });
  });
}
