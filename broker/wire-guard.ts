/**
 * The stream aedes reads and writes instead of the socket: every inbound byte passes the
 * FrameInspector first, so aedes only ever parses frames that broke no rule, and nothing after
 * a CONNECT until the broker authenticated it. Outbound bytes pass through untouched, read once
 * (outbound-frames.ts) for the ack deadline and, on tower connections, the command deliveries.
 *
 * On a violation the guard never hands the offending frame on; it writes the CONNACK the spec
 * asks for (if any), ends the socket once that is flushed, and ends the aedes side, which then
 * closes its client (publishing the will of an established session [MQTT-3.1.2-8]).
 *
 * Liveness does not depend on aedes reading: while it does not, the guard reads ahead (bounded)
 * and answers PINGREQs itself; past the bound it stops reading and says so (onReadPaused), so the
 * broker's keep alive and ack deadline (ack-deadline.ts) wait instead of judging a silence the
 * broker caused.
 */
import { Duplex } from 'node:stream';
import { AckDeadline } from './ack-deadline.js';
import { FrameInspector, type InspectorHooks, type InspectorLimits, type Violation } from './frame-inspector.js';
import { OutboundFrames, type PublishWatch } from './outbound-frames.js';

export interface WireGuardOptions extends InspectorLimits {
  /** A frame broke a rule; the guard closes the connection right after this returns. */
  onViolation(v: Violation): void;
  /** An authenticated client sent a control packet, whether or not aedes reads it yet (keep alive). */
  onReceived?(): void;
  /**
   * The guard stopped reading an authenticated connection (true), because what aedes has not
   * read yet reached the read-ahead bound, or started again (false). Whatever the client sends
   * meanwhile waits in TCP unseen, its PINGREQs included: the broker's keep alive must not count
   * that silence against it.
   */
  onReadPaused?(paused: boolean): void;
  /**
   * How long an authenticated client that owes an answer (a PUBACK, PUBREC or PUBCOMP for what
   * was written to it) may stay silent before the connection is closed as dead (ack-deadline.ts);
   * 0 or absent: never.
   */
  ackTimeoutMs?: number;
  /** The ack deadline expired; the guard destroys the connection right after this returns. */
  onAckTimeout?(): void;
}

/** PINGRESP: fixed header 0xd0, remaining length 0 [MQTT-3.13]. */
const PINGRESP = Buffer.from([0xd0, 0x00]);

export interface GuardSession extends Pick<InspectorHooks, 'maxQos' | 'onPuback'> {
  /** The outbound PUBLISHes to hand over with their payload (command deliveries), if any. */
  watch: PublishWatch | null;
}

export class WireGuard extends Duplex {
  readonly #inner: Duplex;
  readonly #inspector: FrameInspector;
  readonly #onViolation: (v: Violation) => void;
  readonly #onReceived: (() => void) | undefined;
  readonly #onReadPaused: ((paused: boolean) => void) | undefined;
  readonly #holdLimit: number;
  readonly #readAhead: number;
  readonly #ackTimeoutMs: number;
  readonly #onAckTimeout: (() => void) | undefined;
  #ackDeadline: AckDeadline | null = null;
  /** Reads what is written to the client, when anything needs to know (null: nothing does). */
  #outbound: OutboundFrames | null = null;
  #session: GuardSession | null = null;
  /** The inner stream is paused: authentication is pending, or aedes left more than the read-ahead unread. */
  #paused = false;
  /** Reported to onReadPaused: paused after authentication because aedes is not reading. */
  #backPressured = false;
  #wantRead = true;
  #ending = false;
  #innerEnded = false;
  #pendingWrite: (() => void) | null = null;
  /** Something was written to the client: aedes' CONNACK, always its first packet [MQTT-3.2.0-1]. */
  #connacked = false;

  constructor(inner: Duplex, opts: WireGuardOptions) {
    super({ allowHalfOpen: false });
    this.#inner = inner;
    this.#inspector = new FrameInspector(opts);
    this.#onViolation = opts.onViolation;
    this.#onReceived = opts.onReceived;
    this.#onReadPaused = opts.onReadPaused;
    // While the CONNECT is being authenticated, what the client sends next waits here; past
    // this, the socket is not read at all (TCP flow control holds the client).
    this.#holdLimit = opts.maxConnectBytes;
    // While aedes reads nothing (packets it read earlier are unfinished: uplinks held by ingest),
    // the socket is still read, and the frames inspected, for this much beyond the stream's own
    // buffer: a PINGREQ sent behind up to one frame of the largest size is seen and answered
    // (#answerPing), and counts as the client's keep alive. Past it, the socket is not read
    // (TCP flow control holds the client), so a client that goes on publishing is held at
    // highWaterMark + maxFrameBytes (+ one socket read) per connection, never more.
    this.#readAhead = opts.maxFrameBytes;
    this.#ackTimeoutMs = opts.ackTimeoutMs ?? 0;
    this.#onAckTimeout = opts.onAckTimeout;
    inner.on('data', (chunk: Buffer) => this.#onData(chunk));
    inner.on('end', () => {
      this.#innerEnded = true;
      this.#maybeEnd();
    });
    inner.on('drain', () => {
      const resume = this.#pendingWrite;
      this.#pendingWrite = null;
      resume?.();
    });
    inner.on('error', (err) => this.destroy(err));
    inner.on('close', () => this.destroy());
  }

  /** True until the broker authenticated the CONNECT (the connection counts as pending). */
  get authenticated(): boolean {
    return this.#session !== null;
  }

  /** Authentication succeeded: frames after the CONNECT may pass from now on. */
  authenticate(session: GuardSession): void {
    this.#session = session;
    const deadline = this.#ackTimeoutMs > 0 ? new AckDeadline(this.#ackTimeoutMs, () => this.#ackExpired()) : null;
    this.#ackDeadline = deadline;
    if (deadline || session.watch) {
      this.#outbound = new OutboundFrames({
        owed: deadline ? (packetId) => deadline.owe(packetId) : null,
        watch: session.watch,
        lost: () => deadline?.lost(),
      });
    }
    this.#inspector.authenticated({
      maxQos: (filter) => session.maxQos(filter),
      onPuback: (packetId) => session.onPuback(packetId),
      answered: (packetId) => deadline?.answered(packetId),
      received: () => {
        deadline?.heard();
        this.#onReceived?.();
      },
      pingreq: () => this.#answerPing(),
    });
    this.#process(Buffer.alloc(0));
  }

  /**
   * Answers a PINGREQ here rather than in aedes [MQTT-3.12.4-1]. aedes reads nothing more from a
   * connection while two or more packets it read together are unfinished (lib/client.js counts
   * them per read): two uplinks of a tower held by ingest (the pipeline's backpressure) left its
   * PINGREQ unanswered, so the client (or aedes' own keep-alive timer) dropped the connection,
   * and the tower reconnected and resent just when the system was overloaded.
   * The PINGREQ goes on to aedes, which answers it in its turn, before the CONNACK is written
   * (it must come first) and while what was written has not drained (a client that pings
   * without reading cannot grow the write buffer).
   */
  #answerPing(): boolean {
    if (!this.#connacked || this.destroyed || this.writableEnded || this.writableNeedDrain || this.#pendingWrite) return false;
    this.write(PINGRESP);
    return true;
  }

  /**
   * Holds what is written to the connection until the returned release is called, or until the
   * event loop's next check phase at the latest, then writes it in one go (one writev): an answer
   * written now and the PUBACK aedes writes a few microtasks later leave in one syscall instead of
   * two. Releasing twice is harmless.
   */
  hold(): () => void {
    this.cork();
    let held = true;
    const release = (): void => {
      if (!held) return;
      held = false;
      clearImmediate(timer);
      this.uncork();
    };
    const timer = setImmediate(release);
    return release;
  }

  override _read(): void {
    this.#wantRead = true;
    this.#updateFlow();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.#connacked = true;
    this.#outbound?.written(chunk);
    if (this.#inner.write(chunk)) cb();
    else this.#pendingWrite = () => cb();
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    this.#connacked = true;
    // mqtt-packet writes one packet in several pieces under cork(): keep them one syscall.
    this.#inner.cork();
    let ok = true;
    for (const { chunk } of chunks) {
      this.#outbound?.written(chunk);
      ok = this.#inner.write(chunk);
    }
    this.#inner.uncork();
    if (ok) cb();
    else this.#pendingWrite = () => cb();
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.#inner.end();
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.#ackDeadline?.stop();
    this.#outbound?.stop();
    // After a violation with a CONNACK, the socket ends by itself once the CONNACK is flushed.
    if (!this.#ending) this.#inner.destroy();
    const resume = this.#pendingWrite;
    this.#pendingWrite = null;
    resume?.();
    cb(err);
  }

  #onData(chunk: Buffer): void {
    if (this.#ending) return; // after a violation: read and discard, so the close is a FIN
    this.#process(chunk);
  }

  #process(chunk: Buffer): void {
    if (this.destroyed || this.readableEnded) return;
    const { forward, violation } = this.#inspector.feed(chunk);
    for (const b of forward) if (!this.push(b)) this.#wantRead = false;
    if (violation) {
      this.#reject(violation);
      return;
    }
    this.#updateFlow();
    this.#maybeEnd();
  }

  /** The client half-closed: end the aedes side once nothing held back can still pass. */
  #maybeEnd(): void {
    if (!this.#innerEnded || this.#ending || this.readableEnded) return;
    if (this.#session === null && this.#inspector.buffered > 0) return;
    this.push(null);
  }

  #updateFlow(): void {
    const hold = this.#session === null && this.#inspector.buffered > this.#holdLimit;
    const unread = this.readableLength + this.#inspector.buffered;
    const full = !this.#wantRead && unread > this.readableHighWaterMark + this.#readAhead;
    const pause = hold || full;
    if (pause && !this.#paused) {
      this.#paused = true;
      this.#inner.pause();
    } else if (!pause && this.#paused) {
      this.#paused = false;
      this.#inner.resume();
    }
    const backPressured = full && this.#session !== null;
    if (backPressured !== this.#backPressured) {
      this.#backPressured = backPressured;
      this.#ackDeadline?.paused(backPressured);
      this.#onReadPaused?.(backPressured);
    }
  }

  /** The client owed an answer and said nothing for the ack timeout: its peer is presumed dead. */
  #ackExpired(): void {
    if (this.destroyed) return;
    this.#onAckTimeout?.();
    this.destroy(new Error('ack timeout: the client answered nothing it owed'));
  }

  #reject(v: Violation): void {
    this.#ending = true;
    this.#onViolation(v);
    const inner = this.#inner;
    if (v.connack !== undefined) {
      // CONNACK: fixed header 0x20, remaining length 2, session present 0, return code.
      inner.end(Buffer.from([0x20, 0x02, 0x00, v.connack]), () => inner.destroy());
    } else {
      inner.destroy();
    }
    // Keep reading (and dropping) what the client still sends, so closing is not a reset.
    inner.resume();
    this.destroy();
  }
}
