/**
 * The store contract (DESIGN §2): one suite, run against every Store adapter. It is written only
 * against the port, so an adapter passes it or the adapter is wrong. The parts live in
 * ./contract/; this file assembles them and is the suite's only entry point.
 *
 * Usage from an adapter's test file:
 *
 *   describeStoreContract('sqlite', async () => {
 *     const { hooks, policyChanges } = recordingHooks();
 *     const store = new SqliteStore({ file, hooks });
 *     await store.init();
 *     return { store, hooks: { policyChanges }, cleanup: async () => { await store.close(); ... } };
 *   });
 *
 * `open` is called once per test and must return an initialised, empty store (apart from the
 * plans its migrations seed) whose `hooks.onPolicyChanged` appends to `hooks.policyChanges`
 * (recordingHooks() builds that pair). The suite never controls the clock or id factory, so it
 * asserts relations between timestamps and ids, not their values.
 */
import { afterEach, beforeEach, describe } from 'vitest';
import { describeAlertContract } from './contract/alerts.js';
import { describeApiKeyContract } from './contract/api-keys.js';
import { describeAuditContract } from './contract/audit.js';
import { describeConsoleUserContract } from './contract/console-users.js';
import { describeCoreContract } from './contract/core.js';
import { describeDirectoryContract } from './contract/directory.js';
import { ContractState, type StoreContractHarness } from './contract/harness.js';
import { describeIngestContract } from './contract/ingest.js';
import { describeNameContract } from './contract/names.js';
import { describePlanContract } from './contract/plans.js';
import { describePlatformContract } from './contract/platform.js';
import { describePolicyTestContract } from './contract/policy-tests.js';
import { describePolicyVersionContract } from './contract/policy-versions.js';
import { describeCommandContract } from './contract/commands.js';
import { describeRemediationRuleContract } from './contract/remediation-rules.js';
import { describeSortingContract } from './contract/sorting.js';
import { describeUsageContract } from './contract/usage.js';
import { describeWebhookContract } from './contract/webhooks.js';

export { recordingHooks, type PolicyChange, type StoreContractHarness } from './contract/harness.js';

export function describeStoreContract(name: string, open: () => Promise<StoreContractHarness>): void {
  describe(`Store contract: ${name}`, () => {
    const state = new ContractState();

    // Registered before every part's own beforeEach, so the parts always see this test's store.
    beforeEach(async () => {
      state.harness = await open();
    });
    afterEach(async () => {
      const harness = state.harness;
      state.harness = null;
      await harness?.cleanup();
    });

    describeCoreContract(state);
    describeUsageContract(state);
    describeAlertContract(state);
    describeNameContract(state);
    describeDirectoryContract(state);
    describePlatformContract(state);
    describeConsoleUserContract(state);
    describePlanContract(state);
    describeRemediationRuleContract(state);
    describeCommandContract(state);
    describeWebhookContract(state);
    describeAuditContract(state);
    describeApiKeyContract(state);
    describeSortingContract(state);
    describePolicyVersionContract(state);
    describePolicyTestContract(state);
    describeIngestContract(state);
  });
}
