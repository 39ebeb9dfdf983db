/** The edge agent's public surface (what the CLI and the simulator use). */
export { EdgeAgent } from './edge-agent.js';
export type { AgentStats, DroppedInfo, EdgeAgentEvents, EdgeAgentOptions, ObservedUsage } from './agent-types.js';
export { LoggingEnforcer, RecordingEnforcer, type CommandResult, type Enforcer, type RecordedCommand, type RecordedDecision } from './enforcer.js';
export type { OutboundBatch } from './offline-buffer.js';
