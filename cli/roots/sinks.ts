/**
 * The side-effect listeners every process that can cause events runs (bus 'local' scope: each
 * event is handled once, where it was published): the command audit trail, webhook notifications
 * and deliveries, and the optional Firebase mirror.
 */
import { FirebaseSink } from '../../shared/realtime/firebase-sink.js';
import { CommandAudit } from '../../workers/audit/command-audit.js';
import { WebhookDeliverer } from '../../workers/webhooks/webhook-deliverer.js';
import { WebhookNotifier } from '../../workers/webhooks/webhook-notifier.js';
import { component, type Component } from './components.js';
import type { Foundation } from './foundation.js';

export interface SinkOptions {
  /** Make webhook attempts in this process (workers, embedded); others leave them to those. */
  deliverWebhooks: boolean;
}

export async function buildSinks(f: Foundation, opts: SinkOptions): Promise<{ components: Component[]; deliverer: WebhookDeliverer }> {
  const { config, store, bus, counters, logger, now, workflow } = f;
  const onError = (what: string) => (err: unknown) => logger.error({ module: 'workers', err }, `${what} failed`);
  const deliverer = new WebhookDeliverer({
    store,
    counters,
    queues: workflow.queues,
    leases: workflow.leases,
    processId: f.processId,
    maxAttempts: config.webhook_max_attempts,
    timeoutMs: config.webhook_timeout_ms,
    allowPrivateTargets: config.webhook_allow_private,
    now,
    onError: onError('webhook delivery'),
  });
  const commandAudit = new CommandAudit({ store, bus, onError: onError('command audit') });
  const notifier = new WebhookNotifier({
    bus,
    // Roles that do not deliver leave the deliverers to their own sweep timer.
    deliverer: opts.deliverWebhooks ? deliverer : { poke: () => {} },
    counters,
  });
  // The Firebase mirror is opt-in: a database URL, or the emulator for development. firebase-admin
  // is loaded only then (~100 ms of start-up otherwise).
  const firebaseUrl = config.firebase_database_url;
  const firebase = firebaseUrl
    ? new FirebaseSink({
        bus,
        writer: (await import('../../shared/realtime/firebase-writer.js')).createFirebaseWriter({
          databaseURL: firebaseUrl,
          ...(config.firebase_credentials_file ? { credentialsFile: config.firebase_credentials_file } : {}),
        }),
        counters,
        flushMs: config.firebase_flush_ms,
        now,
        onError: onError('firebase write'),
      })
    : null;
  const components: Component[] = [
    component('command-audit', () => commandAudit.start(), () => commandAudit.stop()),
    ...(opts.deliverWebhooks ? [component('webhook-deliverer', () => deliverer.start(), () => deliverer.stop())] : []),
    component('webhook-notifier', () => notifier.start(), () => notifier.stop()),
    ...(firebase ? [component('firebase', () => firebase.start(), () => firebase.stop())] : []),
  ];
  return { components, deliverer };
}
