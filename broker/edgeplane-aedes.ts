/**
 * aedes with one change: a PUBLISH the authorizePublish hook marked as consumed (a tower uplink
 * already handed to ingest, see authorize.ts) is acknowledged but not published, so it is not
 * stored as retained, queued for any session, nor delivered to any subscriber.
 *
 * aedes' PUBLISH handler (lib/handlers/publish.js) calls `broker.publish(packet, client, done)`
 * after the hook with the same packet object, and writes the PUBACK around it (QoS 1: before;
 * QoS 2: the PUBREC after), so skipping the publish keeps the acknowledgement flow intact.
 */
import { Aedes, type AedesOptions, type PublishPacket } from 'aedes';

type Done = (error?: Error) => void;

const basePublish = Aedes.prototype.publish as unknown as (this: Aedes, packet: PublishPacket, client: unknown, done: unknown) => void;

export class EdgeplaneAedes extends Aedes {
  readonly #consumed: WeakSet<object>;

  constructor(opts: AedesOptions, consumed: WeakSet<object>) {
    super(opts);
    this.#consumed = consumed;
  }

  /** aedes' own signature is `publish(packet, [client], done)`; its typings omit the client. */
  override publish(packet: PublishPacket, clientOrDone?: unknown, done?: unknown): void {
    if (this.#consumed.has(packet)) {
      const cb = (typeof clientOrDone === 'function' ? clientOrDone : done) as Done | undefined;
      cb?.();
      return;
    }
    basePublish.call(this, packet, clientOrDone, done);
  }
}
