/**
 * Ingest plugins: how a device protocol other than the towers' MQTT enters the pipeline
 * (seed 003: "extensible framework for custom device protocols"). See shared/ingest/README.md.
 *
 * The seam is the UplinkSink (shared/mqtt/transport.ts), the same one the MQTT broker feeds: a
 * plugin turns its protocol's input into UplinkMessages — a topic of the topic module and a
 * payload its zod schema accepts (usage, discovery, status, sessions) — about a tower it has
 * authenticated by its own means, and awaits `sink.accept`. From there nothing knows where the
 * message came from: the same processors validate, decide, store and answer it, embedded (the
 * workers' Pipeline) or distributed (the uplink queue, then any worker). The MQTT tower path is
 * this same seam (broker/authorize.ts hands uplinks to the sink), with tower credentials as its
 * credentials model; it stays in the broker because MQTT also carries the downlink.
 *
 * What a plugin owns:
 * - its listener and its wire format (start/stop; the constructor does no I/O);
 * - its credentials model: who may speak for which tower (RADIUS: a shared secret per NAS; the
 *   line-protocol example: tower credentials). Unauthenticated input never reaches the sink;
 * - its counters, labelled with its name (`pluginCounters`), and its idea of acknowledgement:
 *   a plugin acknowledges its client only after `sink.accept` resolved, which means stored
 *   (embedded) or durably queued (distributed), exactly like a PUBACK.
 */
import type { IdFactory } from '../ids.js';
import type { Logger } from '../logger.js';
import type { Counters, Labels } from '../metrics.js';
import type { UplinkSink } from '../mqtt/transport.js';

/** What the composition root hands every plugin. */
export interface IngestPluginContext {
  /** The pipeline, exactly as the broker sees it. */
  sink: UplinkSink;
  counters: PluginCounters;
  logger: Logger;
  now: () => number;
  newId: IdFactory;
}

export interface IngestPlugin {
  /** Lowercase name: labels the plugin's counters and logs, and is the `source` of what it sends. */
  readonly name: string;
  /** Binds the listener. Resolves once it accepts input. */
  start(): Promise<void>;
  /** Stops accepting input, then waits for every message already handed to the sink. */
  stop(): Promise<void>;
}

/** Builds a plugin from its context; the composition root calls it once per process. */
export type IngestPluginFactory = (ctx: IngestPluginContext) => IngestPlugin;

/**
 * Counters of one plugin: every increment carries `plugin=<name>`, and `ingest_plugin_*` names
 * are shared by all plugins so one dashboard shows them side by side.
 */
export class PluginCounters {
  constructor(
    private readonly counters: Counters,
    readonly plugin: string,
  ) {}

  inc(name: string, labels?: Labels, by = 1): void {
    this.counters.inc(name, this.#withPlugin(labels), by);
  }

  get(name: string, labels?: Labels): number {
    return this.counters.get(name, this.#withPlugin(labels));
  }

  /**
   * `labels` with plugin=<name> (this plugin's name wins). Not `{ ...labels, plugin }`: V8 (Node 20)
   * builds a spread followed by a key its source lacks through a slow path, ~1 µs per message
   * counted (api/routes/devices.ts); assigning a key the spread already made is not.
   */
  #withPlugin(labels: Labels | undefined): Labels {
    const out: Labels = { plugin: this.plugin, ...labels };
    out.plugin = this.plugin;
    return out;
  }

  /** A message reached the sink (`outcome`: accepted) or was dropped before it (the reason). */
  message(outcome: string): void {
    this.inc('ingest_plugin_messages_total', { outcome });
  }
}

/**
 * Starts plugins in order and stops them in reverse; if one fails to start, those already
 * started are stopped and the error is rethrown.
 */
export class IngestPlugins {
  readonly #plugins: IngestPlugin[];
  readonly #started: IngestPlugin[] = [];

  constructor(plugins: IngestPlugin[]) {
    this.#plugins = plugins;
  }

  get names(): string[] {
    return this.#plugins.map((p) => p.name);
  }

  async start(): Promise<void> {
    for (const p of this.#plugins) {
      try {
        await p.start();
      } catch (err) {
        await this.stop();
        throw err;
      }
      this.#started.push(p);
    }
  }

  async stop(): Promise<void> {
    for (const p of this.#started.splice(0).reverse()) await p.stop();
  }
}
