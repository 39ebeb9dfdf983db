/** The command table of the `edgeplane` CLI: one entry per process role. */
export interface CommandEntry {
  summary: string;
  load: () => Promise<(argv: string[]) => Promise<number>>;
}

export const COMMANDS: Record<string, CommandEntry> = {
  start: { summary: 'Run the embedded control plane (broker + API + workers + SQLite)', load: async () => (await import('./start.js')).startCommand },
  broker: { summary: 'Distributed mode: run one MQTT broker node (sessions in Redis, uplinks to the queue)', load: async () => (await import('./role.js')).brokerCommand },
  worker: { summary: 'Distributed mode: run one policy worker (queue consumer; publishes through the brokers)', load: async () => (await import('./role.js')).workerCommand },
  api: { summary: 'Distributed mode: run one HTTP API process', load: async () => (await import('./role.js')).apiCommand },
  agent: { summary: 'Run an edge agent for one tower (usage JSON lines on stdin, decisions on stdout)', load: async () => (await import('./agent.js')).agentCommand },
  simulate: { summary: 'Provision a scenario through the API and play a fleet of towers against it', load: async () => (await import('./simulate.js')).simulateCommand },
  demo: { summary: 'Start the control plane, load a demo enterprise, play a fleet and report', load: async () => (await import('./demo.js')).demoCommand },
  policy: { summary: 'Policy lifecycle from scripts: what-if replay of a draft over recorded usage (through the API)', load: async () => (await import('./policy.js')).policyCommand },
  bench: { summary: 'Measure raw relay, full pipeline and policy evaluation throughput', load: async () => (await import('./bench.js')).benchCommand },
};
