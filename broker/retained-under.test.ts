/**
 * The embedded broker's `downlink.retainedUnder(prefix)`: the retained part topics one level below
 * a document's head, read from the broker's retained store — what the bundle publisher uses to
 * clear parts an earlier run left behind (workers/bundle-publisher.ts). Real broker, real LevelDB
 * session store, across a restart of the broker on the same directory; only the document asked
 * for is returned, never another tower's or tenant's; only downlink topics are accepted.
 * And `downlink.retainedEdgeDocuments()`: every retained edge document (what the publisher clears
 * for tenants that are gone), and nothing else the broker retains.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { topics } from '../shared/mqtt/topics.js';
import { levelBackends } from './backends-level.js';
import { startHarness, type Harness } from './test-support.js';

let dir: string;
let h: Harness | null = null;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'edgeplane-retained-under-'));
});

afterEach(async () => {
  await h?.close();
  h = null;
  await rm(dir, { recursive: true, force: true });
});

const start = async (): Promise<Harness> => (h = await startHarness({ backends: levelBackends({ location: join(dir, 'sessions') }) }));

describe('downlink.retainedUnder', () => {
  it("lists a document's retained parts, across a restart, and nothing of another document", async () => {
    let b = await start();
    const head = topics.policy('tenantA', 'T1');
    const put = (topic: string, body = 'x') => b.broker.downlink.publish(topic, Buffer.from(body), { retain: true });
    await put(head, '{"head":1}');
    for (const i of [0, 1, 2]) await put(topics.policyPart('tenantA', 'T1', i));
    // Neighbours: another tower's and another tenant's parts, and a directory's.
    await put(topics.policyPart('tenantA', 'T2', 5));
    await put(topics.policyPart('tenantB', 'T1', 6));
    await put(topics.directoryPart('tokA', 3));
    // An empty retained payload removes a part.
    await b.broker.downlink.publish(topics.policyPart('tenantA', 'T1', 1), Buffer.alloc(0), { retain: true });
    await b.close();

    b = await start();
    expect((await b.broker.downlink.retainedUnder!(head)).sort()).toEqual([topics.policyPart('tenantA', 'T1', 0), topics.policyPart('tenantA', 'T1', 2)]);
    expect(await b.broker.downlink.retainedUnder!(topics.directory('tokA'))).toEqual([topics.directoryPart('tokA', 3)]);
    expect(await b.broker.downlink.retainedUnder!(topics.policy('tenantC', 'T1'))).toEqual([]);
  });

  it('refuses what is not a downlink topic: wildcards, uplinks, anything else', async () => {
    const b = await start();
    for (const bad of ['tenants/+/towers/T1/policy', '#', topics.usage('tenantA', 'T1'), 'not/a/topic']) {
      await expect(b.broker.downlink.retainedUnder!(bad), bad).rejects.toThrow(/not a downlink topic/);
    }
  });
});

describe('downlink.retainedEdgeDocuments', () => {
  it('lists every retained bundle, legacy bundle and directory slice with their parts, across a restart, and nothing else', async () => {
    let b = await start();
    const put = (topic: string, body = 'x') => b.broker.downlink.publish(topic, Buffer.from(body), { retain: true });
    const documents = [
      topics.policy('tenantA', 'T1'),
      topics.policyPart('tenantA', 'T1', 0),
      topics.policy('tenantB', 'T2'),
      topics.policyPart('tenantB', 'T2', 7),
      topics.directory('tokA'),
      topics.directoryPart('tokA', 0),
      topics.directoryPart('tokA', 1),
    ];
    for (const t of documents) await put(t);
    // Not listed: another retained downlink message, and a part cleared by an empty payload.
    await put(topics.decisions('tenantA', 'T1'));
    await put(topics.policyPart('tenantB', 'T2', 8));
    await b.broker.downlink.publish(topics.policyPart('tenantB', 'T2', 8), Buffer.alloc(0), { retain: true });
    await b.close();

    b = await start();
    expect((await b.broker.downlink.retainedEdgeDocuments!()).sort()).toEqual([...documents].sort());
  });
});
