/**
 * The stream aedes reads and writes instead of the socket: every inbound byte passes the
 * FrameInspector first, so aedes only ever parses frames that broke no rule, and nothing after
 * a CONNECT until the broker authenticated it. Outbound bytes pass through untouched (observed
 * for command deliveries on tower connections).
 *
 * On a violation the guard never hands the offending frame on; it writes the CONNACK the spec
 * asks for (if any), ends the socket once that is flushed, and ends the aedes side, which then
 * closes its client (publishing the will of an established session [MQTT-3.1.2-8]).
 */
import { Duplex } from 'node:stream';
import { FrameInspector, type InspectorHooks, type InspectorLimits, type Violation } from './frame-inspector.js';

export interface WireGuardOptions extends InspectorLimits {
  /** A frame broke a rule; the guard closes the connection right after this returns. */
  onViolation(v: Violation): void;
  /** An authenticated client sent a control packet, whether or not aedes reads it yet (keep alive). */
  onReceived?(): void;
}

/** PINGRESP: fixed header 0xd0, remaining length 0 [MQTT-3.13]. */
const PINGRESP = Buffer.from([0xd0, 0x00]);

export interface GuardSession extends Pick<InspectorHooks, 'maxQos' | 'onPuback'> {
  /** Observes bytes written to the client (null: nothing to observe). */
  written: ((chunk: Buffer) => void) | null;
}

export class WireGuard extends Duplex {
  readonly #inner: Duplex;
  readonly #inspector: FrameInspector;
  readonly #onViolation: (v: Violation) => void;
  readonly #onReceived: (() => void) | undefined;
  readonly #holdLimit: number;
  #session: GuardSession | null = null;
  /** The inner stream is paused because aedes is not reading or authentication is pending. */
  #paused = false;
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
    // While the CONNECT is being authenticated, what the client sends next waits here; past
    // this, the socket is not read at all (TCP flow control holds the client).
    this.#holdLimit = opts.maxConnectBytes;
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
    this.#inspector.authenticated({
      maxQos: (filter) => session.maxQos(filter),
      onPuback: (packetId) => session.onPuback(packetId),
      received: () => this.#onReceived?.(),
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
    this.#session?.written?.(chunk);
    if (this.#inner.write(chunk)) cb();
    else this.#pendingWrite = () => cb();
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    this.#connacked = true;
    // mqtt-packet writes one packet in several pieces under cork(): keep them one syscall.
    this.#inner.cork();
    let ok = true;
    for (const { chunk } of chunks) {
      this.#session?.written?.(chunk);
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
    const pause = hold || !this.#wantRead;
    if (pause && !this.#paused) {
      this.#paused = true;
      this.#inner.pause();
    } else if (!pause && this.#paused) {
      this.#paused = false;
      this.#inner.resume();
    }
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
