/**
 * Operational events as log lines, one per event, each with a stable `event` field to search and
 * alert on: towers going online/offline, alerts opened, remediations issued and their outcome.
 * Libraries announce these on the bus; only the composition root logs. Local scope: each event is
 * logged once, by the process where it happened. (Refused MQTT logins are logged by the broker,
 * which is where the reason is known.)
 *
 * | event | level | when |
 * |---|---|---|
 * | tower_online / tower_offline | info / warn | a tower's status changed (its own report or its will) |
 * | alert_opened | warn | a deny by rule opened an alert |
 * | remediation_issued | info | a command was created (auto or manual) |
 * | remediation_delivered | info | the tower's MQTT client took it |
 * | remediation_applied / remediation_failed / remediation_expired | info / warn / warn | its outcome |
 */
import type { Bus } from '../../shared/bus.js';
import type { CommandStatus } from '../../shared/domain.js';
import type { Logger } from '../../shared/logger.js';

const OUTCOME: Record<CommandStatus, { event: string; level: 'info' | 'warn'; msg: string }> = {
  pending: { event: 'remediation_issued', level: 'info', msg: 'remediation issued' },
  delivered: { event: 'remediation_delivered', level: 'info', msg: 'remediation delivered to the tower' },
  applied: { event: 'remediation_applied', level: 'info', msg: 'remediation applied at the tower' },
  failed: { event: 'remediation_failed', level: 'warn', msg: 'remediation failed at the tower' },
  expired: { event: 'remediation_expired', level: 'warn', msg: 'remediation expired unacknowledged' },
};

export class EventLog {
  readonly #bus: Bus;
  readonly #log: Logger;

  constructor(opts: { bus: Bus; logger: Logger }) {
    this.#bus = opts.bus;
    this.#log = opts.logger;
  }

  start(): void {
    const bus = this.#bus;
    bus.subscribe(
      'tower.status',
      ({ tower }) => {
        const fields = { event: `tower_${tower.state}`, tower_id: tower.id, agent_version: tower.agent_version };
        if (tower.state === 'online') this.#log.info(fields, 'tower online');
        else this.#log.warn(fields, 'tower offline');
      },
      this,
    );
    bus.subscribe(
      'alert.opened',
      ({ tenant_id, alert }) =>
        this.#log.warn(
          {
            event: 'alert_opened',
            tenant_id,
            alert_id: alert.id,
            severity: alert.severity,
            device_id: alert.device_id,
            app: alert.app,
            action: alert.action,
            rule_id: alert.rule_id,
            policy_id: alert.policy_id,
            tower_id: alert.tower_id,
          },
          'alert opened',
        ),
      this,
    );
    bus.subscribe(
      'command.updated',
      ({ tenant_id, command: c }) => {
        const o = OUTCOME[c.status];
        const fields = {
          event: o.event,
          tenant_id,
          command_id: c.id,
          type: c.type,
          source: c.source,
          device_id: c.device_id,
          app: c.app,
          tower_id: c.tower_id,
          ...(c.rule_id ? { rule_id: c.rule_id } : {}),
          ...(c.status === 'pending' ? { expires_at: new Date(c.expires_at).toISOString() } : { attempts: c.attempts }),
          ...(c.ack_reason ? { outcome_reason: c.ack_reason } : {}),
        };
        this.#log[o.level](fields, o.msg);
      },
      this,
    );
  }

  stop(): void {
    this.#bus.removeAllFor(this);
  }
}
