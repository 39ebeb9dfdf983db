/** The edge agent's public surface (what the CLI and the simulator use). */
export { EdgeAgent } from './edge-agent.js';
export type { AgentStats, DecisionOrigin, DroppedInfo, EdgeAgentEvents, EdgeAgentOptions, ObservedUsage, ObserveResult } from './agent-types.js';
export {
  LoggingEnforcer,
  RecordingEnforcer,
  type BlockingCommandType,
  type BlockStatus,
  type CommandResult,
  type Enforcer,
  type RecordedCommand,
  type RecordedDecision,
} from './enforcer.js';
export {
  enforcerStateFile,
  PersistentEnforcer,
  type ActiveBlock,
  type HeldType,
  type LiftCause,
  type LoadOutcome,
  type PersistentEnforcerOptions,
} from './persistent-enforcer.js';
export type { OutboundBatch } from './offline-buffer.js';
