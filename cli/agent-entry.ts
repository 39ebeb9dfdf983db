/**
 * Entry point of the standalone agent bundle (dist/edgeplane-agent.mjs, cli/build/bundle-agent.ts):
 * `edgeplane agent` alone, with its dependencies bundled in, for a tower that has only Node.
 * Options, output contract and exit statuses are the agent command's.
 */
// First: mqtt-packet must find its length encoder replaced when it loads (var-byte-int-table.ts says why).
import '../shared/mqtt/var-byte-int-table.js';
import { agentCommand } from './commands/agent.js';
import { runMain } from './run-main.js';

runMain('edgeplane-agent', agentCommand);
