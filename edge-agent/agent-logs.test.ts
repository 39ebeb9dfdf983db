/** The agent's log lines as the `edgeplane agent` process composes its loggers: no key twice. */
import { describe, expect, it } from 'vitest';
import { createLogger } from '../shared/logger.js';
import { duplicateKeys, LogCapture } from '../test/support/log-lines.js';
import { EdgeAgent } from './edge-agent.js';

describe('EdgeAgent logs', () => {
  it('the agent process composition (agent logger → EdgeAgent child) writes no key twice', async () => {
    const capture = new LogCapture();
    const logger = createLogger('debug', capture).child({ module: 'agent', tower_id: 'T1' });
    const agent = new EdgeAgent({ url: 'mqtt://127.0.0.1:1', towerId: 'T1', password: 'x', logger });
    await agent.stop();
    expect(capture.lines.length).toBeGreaterThan(0);
    expect(capture.lines.flatMap(duplicateKeys)).toEqual([]);
  });

});
