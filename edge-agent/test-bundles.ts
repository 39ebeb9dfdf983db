/**
 * Test support (not a *.test.ts file): publishes what the cloud would for a tenant — its device
 * directory slice and its policy bundle for the given towers — built with the workers' own
 * builders (shared/policy/edge-bundle.ts), on a plain test broker — and waits for an agent to
 * have applied them.
 */
import type { Effect, Severity } from '../shared/mqtt/payloads.js';
import { topics } from '../shared/mqtt/topics.js';
import { buildDirectorySlice, buildPolicyBundle, inventoryProfiles, directoryEntry } from '../shared/policy/edge-bundle.js';
import type { PolicyModel } from '../shared/policy/model.js';
import type { BundleInfo, EdgeAgent } from './edge-agent.js';
import type { MessageRecorder } from './test-broker.js';

/** The key the test cloud hashes device ids with (the real one derives from the service secret). */
export const TEST_DIRECTORY_KEY = Buffer.alloc(32, 7);

export interface TestTenant {
  id: string;
  version?: number;
  defaultEffect?: Effect;
  /** A device's roles are its owner's (no roles: no owner). */
  devices: Array<{ id: string; roles?: string[] }>;
  grants?: Array<{ rule_id: string; role_id: string; app: string; action: string; effect: Effect; policy_id?: string; severity?: Severity }>;
}

export function testModel(t: TestTenant): PolicyModel {
  const userRoles = new Map<string, string[]>();
  for (const d of t.devices) if (d.roles) userRoles.set(`owner-of-${d.id}`, d.roles);
  return {
    tenant_id: t.id,
    version: t.version ?? 1,
    default_effect: t.defaultEffect ?? 'allow',
    devices: t.devices.map((d) => ({ id: d.id, user_id: d.roles ? `owner-of-${d.id}` : null })),
    user_roles: userRoles,
    grants: (t.grants ?? []).map((g) => ({ policy_id: 'P1', severity: 'high' as const, ...g })),
  };
}

let seq = 0;
const id = (): string => `01JTEST${String(++seq).padStart(19, '0')}`;

/** A directory part held back by publishTenant (`withholdPartOf`), to publish later. */
export interface WithheldPart {
  topic: string;
  payload: Buffer;
}

/**
 * Publishes (retained) the tenant's directory slice, and its bundle to each of `towers`.
 * `withholdPartOf`: the directory part holding that device's entry is not published, but returned.
 */
export async function publishTenant(
  cloud: MessageRecorder,
  t: TestTenant,
  towers: string[],
  key = TEST_DIRECTORY_KEY,
  opts: { withholdPartOf?: string } = {},
): Promise<WithheldPart[]> {
  const model = testModel(t);
  const retained = { qos: 1 as const, retain: true };
  const devices = inventoryProfiles(model).devices;
  const entries = devices.map((d) => directoryEntry(key, t.id, d.id, d.profile));
  const slice = buildDirectorySlice(key, t.id, model.version, entries);
  const target = devices.find((d) => d.id === opts.withholdPartOf);
  const withheldEntry = target ? directoryEntry(key, t.id, target.id, target.profile) : null;
  const withheld: WithheldPart[] = [];
  for (const [i, p] of slice.parts.entries()) {
    const topic = topics.directoryPart(slice.head.token, i);
    if (withheldEntry && Buffer.from((JSON.parse(p.toString()) as { entries: string }).entries, 'base64').includes(withheldEntry)) {
      withheld.push({ topic, payload: p });
      continue;
    }
    await cloud.client.publishAsync(topic, p, retained);
  }
  await cloud.client.publishAsync(topics.directory(slice.head.token), JSON.stringify({ ...slice.head, id: id(), published_at: Date.now() }), retained);
  const bundle = buildPolicyBundle(model);
  for (const tower of towers) {
    for (const [i, p] of bundle.parts.entries()) await cloud.client.publishAsync(topics.policyPart(t.id, tower, i), p, retained);
    await cloud.client.publishAsync(topics.policy(t.id, tower), JSON.stringify({ ...bundle.head, id: id(), tower_id: tower, published_at: Date.now() }), retained);
  }
  return withheld;
}

/**
 * Resolves once `agent` applied one document per entry of `kinds` (a policy bundle, a directory
 * slice; an entry twice for two). Call it before start(): what start() restores or receives counts.
 */
export function untilApplied(agent: EdgeAgent, kinds: ReadonlyArray<BundleInfo['kind']>): Promise<void> {
  const left = [...kinds];
  return new Promise((resolve) => {
    if (left.length === 0) return resolve();
    const on = (_tenant: string | null, info: BundleInfo): void => {
      const i = left.indexOf(info.kind);
      if (i >= 0) left.splice(i, 1);
      if (left.length > 0) return;
      agent.off('bundle', on);
      resolve();
    };
    agent.on('bundle', on);
  });
}

/**
 * Starts `agent` and resolves once it applied `kinds` (its tenant's policy bundle and directory
 * slice by default) and its gate is ready. whenReady() alone only says that no document came for
 * bundleSettleMs since the SUBACK: on a loaded machine the retained documents can come later than
 * a test's short settle time, and the test then decided without them (a CI flake, reproduced with
 * busy loops beside the tests).
 */
export async function startWithBundles(agent: EdgeAgent, kinds: ReadonlyArray<BundleInfo['kind']> = ['policy', 'directory']): Promise<void> {
  const applied = untilApplied(agent, kinds);
  await agent.start();
  await Promise.all([applied, agent.whenReady()]);
}
