/**
 * Finds a dead peer that has data of ours unacknowledged. TCP keepalive probes idle sockets
 * only: once something written is unacknowledged, the kernel retransmits it instead, for
 * tcp_retries2 (~15 min on Linux), and aedes' drain timeout only starts when a write fills the
 * socket's buffer, which a few small deliveries never do. So a client with MQTT keep alive 0
 * whose link died just as a command was written to it stayed "connected", its tower online and
 * its command undelivered, for a quarter of an hour. Node 20 has no TCP_USER_TIMEOUT (nor any
 * setsockopt, nor a view of the kernel's unacknowledged bytes); `socket.setTimeout` is an idle
 * timer, which would close every quiet keep-alive-0 client.
 *
 * MQTT gives a write-progress signal of its own: a QoS 1 or 2 PUBLISH (and a PUBREL) written to
 * the client must be answered [MQTT-4.3.2] [MQTT-4.3.3]. While at least one such answer is
 * outstanding, the client has to be heard from (any packet) within `timeoutMs`, or the deadline
 * expires. A client that answers or sends anything is alive; one that only receives QoS 0 is
 * never judged (nothing it owes us). While the broker itself does not read the connection (the
 * read-ahead is full, see WireGuard), the client's answers could not be seen: the deadline waits,
 * and starts a full period again when reading resumes.
 */
/** A packet id is 16 bits; a client owes at most this many answers. */
const MAX_IDS = 65_535;

export class AckDeadline {
  readonly #timeoutMs: number;
  readonly #onExpired: () => void;
  /** Packet ids of PUBLISHes (QoS > 0) and PUBRELs written and not answered yet. */
  readonly #owed = new Set<number>();
  #lost = false;
  #paused = false;
  #timer: NodeJS.Timeout | null = null;
  #stopped = false;

  constructor(timeoutMs: number, onExpired: () => void) {
    this.#timeoutMs = timeoutMs;
    this.#onExpired = onExpired;
  }

  /** Answers the client owes (for tests and logs). */
  get owed(): number {
    return this.#owed.size;
  }

  /** A QoS 1/2 PUBLISH or a PUBREL with `packetId` was written (outbound-frames.ts reads them). */
  owe(packetId: number): void {
    if (this.#lost || this.#stopped) return;
    const before = this.#owed.size;
    if (before < MAX_IDS) this.#owed.add(packetId);
    if (before === 0 && this.#owed.size > 0) this.#arm();
  }

  /**
   * What was written could not be read (aedes never writes such framing): stop judging this
   * connection rather than misjudge it.
   */
  lost(): void {
    this.#lost = true;
    this.#owed.clear();
    this.#disarm();
  }

  /** The client answered `packetId` (PUBACK, PUBREC or PUBCOMP). */
  answered(packetId: number): void {
    this.#owed.delete(packetId);
  }

  /** A packet arrived from the client: it is alive; the deadline starts again while it still owes answers. */
  heard(): void {
    if (this.#owed.size === 0) this.#disarm();
    else this.#arm();
  }

  /** The broker stopped (true) or resumed (false) reading the connection. */
  paused(paused: boolean): void {
    this.#paused = paused;
    if (paused) this.#disarm();
    else if (this.#owed.size > 0) this.#arm();
  }

  stop(): void {
    this.#stopped = true;
    this.#disarm();
    this.#owed.clear();
  }

  #arm(): void {
    if (this.#paused || this.#stopped) return;
    if (this.#timer) {
      this.#timer.refresh();
      return;
    }
    this.#timer = setTimeout(() => {
      this.#timer = null;
      if (this.#owed.size > 0 && !this.#paused && !this.#stopped) this.#onExpired();
    }, this.#timeoutMs);
    this.#timer.unref();
  }

  #disarm(): void {
    if (!this.#timer) return;
    clearTimeout(this.#timer);
    this.#timer = null;
  }
}
