/**
 * The policy pipeline as an UplinkSink: routes each uplink message to its processor with bounded
 * concurrency. Beyond the bound, `accept` waits, which holds the tower's PUBACK and so pushes back
 * on the sender instead of buffering without limit. `stop()` refuses new work and drains what is
 * in flight, so a graceful shutdown loses nothing that was acknowledged.
 */
import type { UplinkMessage, UplinkSink } from '../shared/mqtt/transport.js';
import { createAckProcessor } from './ack-processor.js';
import type { WorkerContext } from './context.js';
import { createDiscoveryProcessor } from './discovery-processor.js';
import { PolicyEngine, type PolicyEngineOptions } from './policy-engine.js';
import { RemediationEngine } from './remediation/remediation-engine.js';
import { createSessionProcessor } from './session-processor.js';
import { createStatusProcessor } from './status-processor.js';
import { createUsageProcessor } from './usage-processor.js';

export class ShuttingDownError extends Error {
  constructor() {
    super('pipeline is shutting down; the message will be redelivered');
    this.name = 'ShuttingDownError';
  }
}

export interface PipelineOptions extends PolicyEngineOptions {
  concurrency: number;
}

export class Pipeline implements UplinkSink {
  readonly engine: PolicyEngine;
  readonly remediation: RemediationEngine;
  readonly #ctx: WorkerContext;
  readonly #concurrency: number;
  readonly #usage;
  readonly #status;
  readonly #discovery;
  readonly #acks;
  readonly #sessions;
  /** Accepted and not finished (waiting for a slot included): what stop() drains. */
  #inflight = 0;
  /** Being processed now: bounded by `concurrency`. */
  #active = 0;
  readonly #slots: Array<() => void> = [];
  readonly #idle: Array<() => void> = [];
  #closed = false;
  #ready: Promise<void>;
  #resolveReady!: () => void;

  constructor(ctx: WorkerContext, opts: PipelineOptions) {
    this.#ctx = ctx;
    this.#concurrency = opts.concurrency;
    this.engine = new PolicyEngine(ctx, opts);
    this.remediation = new RemediationEngine(ctx);
    this.#usage = createUsageProcessor(ctx, this.engine, this.remediation);
    this.#status = createStatusProcessor(ctx);
    this.#discovery = createDiscoveryProcessor(ctx);
    this.#acks = createAckProcessor(ctx);
    this.#sessions = createSessionProcessor(ctx, this.engine.tenantOfDevice);
    this.#ready = new Promise((r) => (this.#resolveReady = r));
  }

  async start(): Promise<void> {
    await this.engine.start();
    this.#resolveReady();
  }

  /** Refuses new messages, drains every message accepted before the call, then stops the engine. */
  async stop(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#inflight > 0) await new Promise<void>((r) => this.#idle.push(r));
    await this.engine.stop();
  }

  get inflight(): number {
    return this.#inflight;
  }

  async accept(msg: UplinkMessage): Promise<void> {
    if (this.#closed) throw new ShuttingDownError();
    // Counted synchronously, so a stop() issued right after this call waits for it.
    this.#inflight++;
    try {
      await this.#ready;
      if (this.#active >= this.#concurrency) {
        this.#ctx.counters.inc('ingest_backpressure_waits_total');
        await new Promise<void>((r) => this.#slots.push(r));
      }
      this.#active++;
      try {
        await this.#route(msg);
      } finally {
        this.#active--;
        this.#slots.shift()?.();
      }
    } catch (err) {
      // Infrastructure failure (store, broker): the broker refuses the PUBLISH and the tower
      // redelivers; idempotent processing makes the retry safe.
      this.#ctx.counters.inc('ingest_errors_total', { kind: msg.parsed.kind });
      throw err;
    } finally {
      this.#inflight--;
      if (this.#inflight === 0) for (const r of this.#idle.splice(0)) r();
    }
  }

  async #route(msg: UplinkMessage): Promise<void> {
    const p = msg.parsed;
    switch (p.kind) {
      case 'usage':
        return this.#usage(msg, p.tenantId);
      case 'status':
        return this.#status(msg);
      case 'discovery':
        return this.#discovery(msg);
      case 'acks':
        return this.#acks(msg, p.tenantId);
      case 'sessions':
        return this.#sessions(msg);
    }
  }
}
