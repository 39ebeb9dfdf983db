import type { Scenario } from '../simulator/scenario.js';

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
