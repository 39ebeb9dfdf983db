import { loadScenario, parseScenario, ScenarioError, type Scenario } from '../simulator/scenario.js';
import { UsageError } from './args.js';

/**
 * Overrides a scenario's duration and/or rate from the command line. Outages are scaled with the
 * duration so a shortened demo still shows a tower going away and coming back.
 */
export function withDuration(s: Scenario, durationS: number | undefined, rateEps: number | undefined): Scenario {
  const out: Scenario = { ...s };
  if (rateEps !== undefined && rateEps > 0) out.rate_eps = rateEps;
  if (durationS !== undefined && durationS > 0 && durationS !== s.duration_s) {
    const k = durationS / s.duration_s;
    out.duration_s = durationS;
    out.outages = s.outages.map((o) => ({ ...o, at_s: o.at_s * k, duration_s: Math.max(0.5, o.duration_s * k) }));
  }
  return out;
}

/**
 * The scenario a command runs: `file` with the command line's --duration/--rate, checked again
 * after the overrides (they may take it past the scenario limits). A bad scenario is bad input
 * (UsageError, exit 2), not a failed run: exit 1 means the control plane lost, left undecided or
 * missed something, and CI must be able to tell the two apart.
 */
export async function scenarioFor(file: string, durationS: number | undefined, rateEps: number | undefined): Promise<Scenario> {
  try {
    return parseScenario(withDuration(await loadScenario(file), durationS, rateEps), `${file} with --duration/--rate`);
  } catch (err) {
    if (err instanceof ScenarioError) throw new UsageError(err.message);
    throw err;
  }
}
