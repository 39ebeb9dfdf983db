/**
 * One decision for one usage event: device → owning user → roles → policies → rules.
 * Pure: the caller supplies the tenant's compiled index and the platform device directory.
 */
import type { Decision, UsageEvent } from '../mqtt/payloads.js';
import type { Outcome, PolicyIndex } from './compile-policy-index.js';

export type Evaluation =
  | { kind: 'decided'; decision: Decision; user_id: string | null }
  | { kind: 'rejected'; reason: 'device_tenant_mismatch' };

/**
 * @param tenantOfDevice platform-wide lookup; a device registered to another tenant than the
 *   topic's is rejected (DESIGN §3: the cloud checks the device belongs to the topic's tenant).
 */
export function evaluateUsage(
  index: PolicyIndex,
  event: UsageEvent,
  tenantOfDevice: (deviceId: string) => string | undefined,
): Evaluation {
  const out = index.decideForDevice(event.device_id, event.app, event.action);
  if (out === undefined) {
    const other = tenantOfDevice(event.device_id);
    if (other !== undefined && other !== index.tenantId) return { kind: 'rejected', reason: 'device_tenant_mismatch' };
    return {
      kind: 'decided',
      user_id: null,
      decision: {
        event_id: event.id,
        device_id: event.device_id,
        effect: index.defaultEffect,
        reason: 'unknown_device',
        rule_id: null,
        policy_id: null,
        severity: null,
      },
    };
  }
  return { kind: 'decided', user_id: index.ownerOf(event.device_id) ?? null, decision: decisionOf(event, out) };
}

/** The decision an outcome makes for an event: the cloud's and the edge's answer alike. */
export function decisionOf(event: Pick<UsageEvent, 'id' | 'device_id'>, out: Outcome): Decision {
  return {
    event_id: event.id,
    device_id: event.device_id,
    effect: out.effect,
    reason: out.reason,
    rule_id: out.rule?.rule_id ?? null,
    policy_id: out.rule?.policy_id ?? null,
    severity: out.rule && out.effect === 'deny' ? out.rule.severity : null,
  };
}
