/** An alert as the realtime sink's tests publish it: one device's open alert, fields overridable. */
import type { Alert } from '../domain.js';
import { NO_WORKFLOW } from '../store/rules/alerts.js';

export const NOW = 1_700_000_000_000;

export function testAlert(id: string, overrides: Partial<Alert> = {}): Alert {
  return {
    id,
    tenant_id: 't1',
    device_id: 'dev-1',
    user_id: 'u1',
    rule_id: 'r1',
    policy_id: 'p1',
    app: 'dropbox',
    action: 'upload',
    tower_id: 'T1',
    severity: 'high',
    count: 1,
    first_seen: NOW,
    last_seen: NOW,
    status: 'open',
    ...NO_WORKFLOW,
    ...overrides,
  };
}
