/**
 * TLS connections (MQTT over TLS, WSS) before their handshake is done: as unauthenticated as a
 * TCP connection before its CONNECT, so they count against the same pending cap from their TCP
 * accept, are refused beyond it, and are closed when the handshake has not completed within a
 * deadline counted from the accept.
 *
 * Node's own `handshakeTimeout` does not do this: it is an idle timeout (a client sending a
 * byte now and then resets it), and when it fires it only emits 'tlsClientError' on the server;
 * the socket stays open (Node 20).
 *
 * tls.Server reports the raw socket at accept ('connection') and the TLSSocket wrapping it at the
 * end of the handshake ('secureConnection'), with no public link between them: they are matched
 * by `connectionKey` (shared/net/connection-key.ts).
 */
import type { Socket } from 'node:net';
import { connectionKey } from '../shared/net/connection-key.js';

/**
 * Who admits a connection at accept: a count and its release, or null when it refused (and
 * destroyed) the connection. The broker's ConnectionGate (pending MQTT connections) is one; the
 * RadSec listener's connection cap is another.
 */
export interface HandshakeAdmission {
  reserve(raw: Socket, peer: string): (() => void) | null;
}

interface Handshake {
  raw: Socket;
  release: () => void;
  timer: NodeJS.Timeout | null;
}

export class TlsHandshakes {
  readonly #gate: HandshakeAdmission;
  readonly #timeoutMs: number;
  readonly #onTimeout: ((raw: Socket) => void) | undefined;
  readonly #open = new Map<string, Handshake>();

  /** `onTimeout` hears of each connection the deadline closes (before it is destroyed). */
  constructor(gate: HandshakeAdmission, timeoutMs: number, onTimeout?: (raw: Socket) => void) {
    this.#gate = gate;
    this.#timeoutMs = timeoutMs;
    this.#onTimeout = onTimeout;
  }

  /**
   * On the TLS server's 'connection' (the raw TCP socket): counts it as pending until `release`
   * or its close, or refuses it (destroyed, counted and logged by the gate) beyond the cap. It is
   * destroyed if its handshake has not completed (`secured`) within the deadline.
   */
  accepted(raw: Socket, peer: string): void {
    const release = this.#gate.reserve(raw, peer);
    if (!release) return;
    const key = connectionKey(raw);
    const timer = setTimeout(() => {
      this.#onTimeout?.(raw);
      raw.destroy();
    }, this.#timeoutMs);
    timer.unref();
    const entry: Handshake = { raw, release, timer };
    this.#open.set(key, entry);
    raw.once('close', () => this.#end(key, entry));
  }

  /** The handshake of `socket` completed: its deadline ends (it stays counted until `release`). */
  secured(socket: Socket): void {
    const entry = this.#open.get(connectionKey(socket));
    if (entry?.timer) clearTimeout(entry.timer);
    if (entry) entry.timer = null;
  }

  /**
   * `socket` (the TLSSocket) moves on to where it is counted again, or no longer needs to be
   * (admit for MQTT, the WebSocket upgrade): its count from the accept is released, once.
   */
  release(socket: Socket): void {
    const key = connectionKey(socket);
    const entry = this.#open.get(key);
    if (entry) this.#end(key, entry);
  }

  /** Closes every connection whose handshake is not done yet (the listener stops). */
  destroyPending(): void {
    for (const entry of this.#open.values()) if (entry.timer) entry.raw.destroy();
  }

  #end(key: string, entry: Handshake): void {
    if (entry.timer) clearTimeout(entry.timer);
    entry.timer = null;
    entry.release();
    if (this.#open.get(key) === entry) this.#open.delete(key);
  }
}
