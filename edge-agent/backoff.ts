/**
 * Reconnect delay for attempt `attempt` (0-based): exponential growth from `minMs`, capped at
 * `maxMs`, with "equal jitter" (half fixed, half random) so a fleet that lost the broker at the
 * same moment does not reconnect in lock-step, while no delay ever falls below `minMs`.
 */
export function backoffDelay(attempt: number, minMs: number, maxMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 30));
  const half = ceiling / 2;
  return Math.round(Math.max(minMs, Math.min(maxMs, half + random() * half)));
}
