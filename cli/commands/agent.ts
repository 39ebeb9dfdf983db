/**
 * `edgeplane agent`: the edge agent for one tower as a process. Tower software writes usage as
 * JSON lines on stdin; every non-empty input line gets exactly one JSON line on stdout (a
 * decision, or a rejection with its reason), tagged with the input line number, so any tower
 * stack can integrate through a pipe. Logs go to stderr. The output contract and the exit codes
 * are in `agentHelp` below and in the README.
 */
import { readFile } from 'node:fs/promises';
import { ErrorWithReasonCode } from 'mqtt';
import { AnswerOutput } from '../../edge-agent/answer-output.js';
import { EdgeAgent, journalDir, type DecisionOrigin, type Rejection } from '../../edge-agent/edge-agent.js';
import { TOPIC_ID_RE } from '../../shared/ids.js';
import { createLogger, flushLogger, type LogFormat, type Logger } from '../../shared/logger.js';
import type { Decision } from '../../shared/mqtt/payloads.js';
import { numberOption, optionsHelp, parseCommandArgs, UsageError, type CommandOption } from '../args.js';
import { lockDataDir, type DataDirLock } from '../data-dir-lock.js';
import { checkBrokerUrl, checkLogLevel } from '../broker-url.js';
import { StartupError } from '../startup-error.js';

/** Exit statuses, as documented in --help. */
export const AGENT_EXIT = { ok: 0, failed: 1, usage: 2, unreachable: 3, refused: 4 } as const;

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const DEFAULT_DECISION_TIMEOUT_MS = 5_000;
/**
 * The longest input line read (bytes, without its line break): an event is a few hundred bytes.
 * A longer line is answered invalid_input as soon as it passes this, and the rest of it is
 * skipped, not held: a line of gigabytes without a newline no longer grows the process.
 */
export const MAX_LINE_BYTES = 64 * 1024;
/** setTimeout's ceiling: a longer delay fires at once (Node sets it to 1 ms). */
const MAX_TIMER_MS = 2_147_483_647;

const options: Record<string, CommandOption> = {
  url: { type: 'string', describe: 'Broker URL: mqtt://host:1883, mqtts://host:8883, ws://host:8083 or wss://…; several mqtt(s):// comma-separated fail over', default: 'mqtt://127.0.0.1:1883' },
  'tower-id': { type: 'string', describe: 'This tower\'s id (its MQTT username)' },
  password: { type: 'string', describe: 'Tower credential from POST /towers/{id}/credentials (env EDGEPLANE_TOWER_PASSWORD)' },
  'ca-file': { type: 'string', describe: 'PEM CA certificate to trust for mqtts:// and wss:// (a private or self-signed CA)' },
  'connect-timeout-ms': { type: 'string', describe: 'Exit with status 3 when the broker cannot be reached within this at start (with --state-dir holding the policy bundles of an earlier run: go on, deciding from them, and keep reconnecting)', default: String(DEFAULT_CONNECT_TIMEOUT_MS) },
  'decision-timeout-ms': { type: 'string', describe: 'At end of input, how long to wait for outstanding decisions', default: String(DEFAULT_DECISION_TIMEOUT_MS) },
  'unknown-device-effect': { type: 'string', describe: 'allow | deny: the decision for a device no tenant\'s bundle lists', default: 'allow' },
  'batch-max-events': { type: 'string', describe: 'Flush a batch at this many events', default: '100' },
  'batch-max-delay-ms': { type: 'string', describe: 'While a batch awaits its answer, the longest the next one accumulates (nothing awaiting: sent at once)', default: '50' },
  'buffer-max-events': { type: 'string', describe: 'Events kept while offline; the oldest are dropped (and answered as rejected) beyond it', default: '50000' },
  'state-dir': { type: 'string', describe: 'Keep remediation state in <dir>/enforcer-<tower-id>.json (blocks survive restarts), unsent command acks in <dir>/acks-<tower-id>.json, every usage event in the journal <dir>/journal-<tower-id>/ until the broker has it, and a copy of the tower\'s policy bundles and directory in <dir>/bundles-<tower-id>/ (a restart while the broker is unreachable decides from them)' },
  'local-deadline-ms': { type: 'string', describe: "Decide an event locally from its tenant's policy bundle when the cloud has not answered within this (0: only while the uplink is down)", default: '1000' },
  'journal-max-mb': { type: 'string', describe: "The journal's disk budget (MiB); beyond it the oldest events are evicted, counted and logged", default: '1024' },
  'max-packet-mb': { type: 'string', describe: 'Largest packet taken from the broker (MiB, 1–256); a larger one closes the connection, counted and logged (bundle parts and commands are far smaller)', default: '16' },
  'journal-fsync-ms': { type: 'string', describe: 'How often the journal is fdatasync\'ed (0: after every write, slower); a kill -9 loses nothing either way, a power loss at most this', default: '1000' },
  'log-level': { type: 'string', describe: 'Log level (logs go to stderr)', default: 'info' },
  'log-format': { type: 'string', describe: 'auto | json | pretty (auto: human-readable on a terminal)', default: 'auto' },
};

export const agentHelp = `Usage: edgeplane agent --tower-id <id> --password <credential> [options]

Runs the edge agent of one tower. Reads usage events as JSON lines on stdin, e.g.
  {"device_id":"dev-42","app":"slack","action":"upload_file"}
(optional: "ts" epoch ms, "bytes", "tenant_id", "tower_id": if given, this tower's; a tenant_id
other than the one the device directory lists for the device is refused, device_tenant_mismatch).
Every non-empty input line gets exactly one JSON line on stdout, with "line" (its input line
number) and "event_id":
  decision   {"line":1,"event_id":"…","tenant_id":"01J…","device_id":"dev-42","effect":"deny",
              "reason":"rule","rule_id":"…","policy_id":"…","severity":"high","source":"cloud"}
             reason: rule | default | blocked (a remediation block in force, answered at once,
             "source":"local") | unknown_device (the device directory does not list the device:
             "tenant_id":null, effect from --unknown-device-effect, reported for discovery)
             "source":"local" with "bundle_version": decided here from the tenant's policy
             bundle of that version, because the uplink is down or the cloud had not answered
             within --local-deadline-ms; the cloud decides it again and records any disagreement
  rejection  {"line":2,"event_id":null,"rejected":"invalid_input","message":"…"}
             rejected: invalid_input | no_policy_bundle | buffer_overflow | shutdown |
             device_tenant_mismatch | plan_rate_limited | no_decision (no cloud answer within
             --decision-timeout-ms after the end of input)
Output lines come in the order answers arrive, not input order; match them by "line".
A line is at most ${MAX_LINE_BYTES} bytes (UTF-8); a longer one is answered invalid_input (as soon
as it is that long) and skipped to its end. Lines end at \\n, \\r\\n or \\r.
With --state-dir every event is journalled until the broker acknowledges it: a restart (even
after kill -9) sends what the last run could not, in order, before anything new; and the
policy bundles and directory are copied there, so an agent restarted while the broker cannot
be reached decides locally from them (once --connect-timeout-ms has passed).
Events read before the policy bundles have arrived wait for them (they are not taken for
unknown devices).

On end of input or SIGINT/SIGTERM the agent flushes what it holds, waits up to
--decision-timeout-ms for outstanding decisions, acks any remediation command it applied
(journalled in --state-dir when the broker cannot take it, sent at the next start) and
disconnects. Remediation commands applied and blocks lifted are logged on stderr.

Exit status: 0 input ended (or a signal) and every line was answered; 1 unexpected failure;
2 bad options; 3 the broker could not be reached within --connect-timeout-ms (default
${DEFAULT_CONNECT_TIMEOUT_MS} ms): bad host, closed port, TLS failure — unless --state-dir holds
the policy bundles of an earlier run: then it logs started_offline, decides locally from them and
keeps reconnecting; 4 the broker refused the tower's credentials. After the first connection,
outages are retried for as long as it runs.

Options:
${optionsHelp(options)}
  -h, --help                   Show this help
`;

/** One input line: its text, or that it was longer than the limit (its bytes not kept). */
export type InputLine = { text: string } | { tooLong: true };

/**
 * Splits input bytes into lines as readline did (\n, \r\n or a lone \r; a last line without a
 * break counts), holding at most `maxBytes` of a line: readline held a whole line, however long,
 * so a writer that never sent a newline grew the agent without bound. A line passing the limit
 * yields `{ tooLong: true }` at once, and its remaining bytes are skipped up to its break.
 */
export class LineSplitter {
  readonly #max: number;
  #parts: Buffer[] = [];
  #size = 0;
  /** The current line passed the limit (already reported): skipping to its end. */
  #skipping = false;
  /** The previous chunk ended in \r: a \n starting this one ends no further line. */
  #cr = false;

  constructor(maxBytes: number) {
    this.#max = maxBytes;
  }

  /** Bytes held of the line being read (never more than maxBytes). */
  get buffered(): number {
    return this.#size;
  }

  push(chunk: Buffer): InputLine[] {
    const out: InputLine[] = [];
    let start = this.#cr && chunk[0] === 0x0a ? 1 : 0;
    if (chunk.length > 0) this.#cr = false;
    for (let i = start; i < chunk.length; i++) {
      const b = chunk[i];
      if (b !== 0x0a && b !== 0x0d) continue;
      this.#add(chunk.subarray(start, i), out);
      this.#end(out);
      if (b === 0x0d) {
        if (i + 1 === chunk.length) this.#cr = true;
        else if (chunk[i + 1] === 0x0a) i++;
      }
      start = i + 1;
    }
    this.#add(chunk.subarray(start), out);
    return out;
  }

  /** End of input: the last line, if it had no line break. */
  end(): InputLine[] {
    const out: InputLine[] = [];
    if (this.#size > 0) this.#end(out);
    this.#skipping = false;
    return out;
  }

  #add(part: Buffer, out: InputLine[]): void {
    if (this.#skipping || part.length === 0) return;
    if (this.#size + part.length > this.#max) {
      this.#parts = [];
      this.#size = 0;
      this.#skipping = true;
      out.push({ tooLong: true });
      return;
    }
    this.#parts.push(Buffer.from(part));
    this.#size += part.length;
  }

  #end(out: InputLine[]): void {
    if (this.#skipping) {
      this.#skipping = false;
      return;
    }
    out.push({ text: Buffer.concat(this.#parts, this.#size).toString('utf8') });
    this.#parts = [];
    this.#size = 0;
  }
}

interface Pending {
  line: number;
  device_id: string;
}

/** Writes one answer line per event, each at most once; bounded when stdout is not read (answer-output.ts). */
class AnswerWriter {
  readonly #pending = new Map<string, Pending>();
  readonly #drained = new Set<() => void>();
  readonly #output: AnswerOutput;
  #closed = false;
  /** stdout went away (EPIPE): nobody reads the answers any more. */
  onClosed: () => void = () => {};

  constructor(output: AnswerOutput) {
    this.#output = output;
    process.stdout.on('error', () => {
      this.#closed = true;
      this.onClosed();
    });
  }

  get pending(): number {
    return this.#pending.size;
  }

  expect(eventId: string, p: Pending): void {
    this.#pending.set(eventId, p);
  }

  decision(tenantId: string | null, d: Decision, origin: DecisionOrigin): void {
    const p = this.#take(d.event_id);
    if (!p) return;
    const { event_id, ...rest } = d;
    const bundle = 'bundle_version' in origin ? { bundle_version: origin.bundle_version } : {};
    this.#write({ line: p.line, event_id, tenant_id: tenantId, ...rest, source: origin.source, ...bundle });
  }

  rejected(r: Rejection): void {
    const p = this.#take(r.event_id);
    if (p) this.#write({ line: p.line, event_id: r.event_id, tenant_id: r.tenant_id, device_id: r.device_id ?? p.device_id, rejected: r.reason, message: r.message });
  }

  invalid(line: number, message: string): void {
    this.#write({ line, event_id: null, rejected: 'invalid_input', message });
  }

  /** Answers every event still waiting with `no_decision`. */
  giveUp(message: string): void {
    for (const [eventId, p] of [...this.#pending]) {
      this.#pending.delete(eventId);
      this.#write({ line: p.line, event_id: eventId, device_id: p.device_id, rejected: 'no_decision', message });
    }
  }

  /** Resolves when nothing is pending, or after `timeoutMs`. */
  drained(timeoutMs: number): Promise<void> {
    if (this.#pending.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#drained.delete(done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.#drained.add(done);
    });
  }

  #take(eventId: string): Pending | undefined {
    const p = this.#pending.get(eventId);
    if (!p) return undefined;
    this.#pending.delete(eventId);
    if (this.#pending.size === 0) for (const d of [...this.#drained]) d();
    return p;
  }

  #write(obj: Record<string, unknown>): void {
    if (!this.#closed) this.#output.write(JSON.stringify(obj) + '\n');
  }
}

function parseEffect(v: unknown): 'allow' | 'deny' {
  if (v === 'allow' || v === 'deny') return v;
  throw new UsageError(`--unknown-device-effect must be allow or deny, got ${JSON.stringify(v)}`);
}

/** A count option: a whole number of at least 1. */
function countOption(values: Record<string, unknown>, name: string): number | undefined {
  const n = numberOption(values, name);
  if (n !== undefined && !(Number.isInteger(n) && n >= 1)) throw new UsageError(`--${name} must be a whole number of at least 1, got ${JSON.stringify(values[name])}`);
  return n;
}

/** A duration option (ms): at most what a timer can wait (a longer one would fire at once). */
function msOption(values: Record<string, unknown>, name: string): number | undefined {
  const n = numberOption(values, name);
  if (n !== undefined && n > MAX_TIMER_MS) throw new UsageError(`--${name} must be at most ${MAX_TIMER_MS} (about 24.8 days), got ${JSON.stringify(values[name])}`);
  return n;
}

/** MQTT's own ceiling: a remaining length of at most 268,435,455 bytes (256 MiB). */
const MQTT_MAX_PACKET_MB = 256;

function maxPacketBytes(values: Record<string, unknown>): number | undefined {
  const mb = numberOption(values, 'max-packet-mb');
  if (mb === undefined) return undefined;
  if (mb < 1 || mb > MQTT_MAX_PACKET_MB) throw new UsageError(`--max-packet-mb must be between 1 and ${MQTT_MAX_PACKET_MB}, got ${JSON.stringify(values['max-packet-mb'])}`);
  return Math.floor(mb * 1024 * 1024);
}

function journalMaxBytes(values: Record<string, unknown>): number | undefined {
  const mb = numberOption(values, 'journal-max-mb');
  if (mb === undefined) return undefined;
  if (mb < 1) throw new UsageError(`--journal-max-mb must be at least 1, got ${mb}`);
  return Math.floor(mb * 1024 * 1024);
}

function parseLogFormat(v: unknown): LogFormat {
  if (v === 'auto' || v === 'json' || v === 'pretty') return v;
  throw new UsageError(`--log-format must be auto, json or pretty, got ${JSON.stringify(v)}`);
}

async function readCa(file: string | undefined): Promise<Buffer | undefined> {
  if (file === undefined) return undefined;
  try {
    return await readFile(file);
  } catch (err) {
    throw new UsageError(`--ca-file ${file} cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/**
 * One agent per tower and state dir: two appended to one journal (the same segment names, opened
 * truncating) and one ack and enforcer file, and each took the other's MQTT session over. The lock
 * is the control plane's (cli/data-dir-lock.ts), on the tower's journal directory: a holder that
 * died (kill -9, reboot) leaves a stale lock, taken over. Its file is kept between runs and
 * rewritten in place: a tower's disk fills up, and the journal opens on a full disk, so the lock
 * must not need room for a new file at each start.
 */
export async function lockStateDir(stateDir: string, towerId: string): Promise<DataDirLock> {
  try {
    return await lockDataDir(journalDir(stateDir, towerId), { keepFile: true });
  } catch (err) {
    if (err instanceof StartupError) throw new Error(err.message.replaceAll('--data-dir', '--state-dir').replace('another edgeplane process', `another edgeplane agent of tower ${towerId}`));
    throw new UsageError(`--state-dir ${stateDir} cannot be used: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/**
 * Connects, bounded by `timeoutMs` until the first CONNACK. Returns an exit status when the agent
 * cannot run, or 'offline' when the broker could not be reached but the agent restored policy
 * bundles from --state-dir: it then decides from them and goes on reconnecting.
 */
async function connect(agent: EdgeAgent, url: string, timeoutMs: number): Promise<number | null | 'offline'> {
  let lastError: string | null = null;
  const noteError = (err: Error): void => void (lastError = err.message);
  const noteRetry = (info: { error?: string }): void => void (lastError = info.error ?? lastError);
  agent.on('error', noteError);
  agent.on('reconnecting', noteRetry);
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
  agent.once('connect', () => clearTimeout(timer));
  const started = agent.start().then(
    () => 'ok' as const,
    (err: unknown) => err as Error,
  );
  const outcome = await Promise.race([started, timedOut]);
  clearTimeout(timer);
  agent.off('error', noteError);
  agent.off('reconnecting', noteRetry);
  if (outcome === 'ok') return null;
  if (outcome === 'timeout' && !agent.online && agent.restoredTenants > 0) return 'offline';
  if (outcome === 'timeout' && !agent.online) {
    await agent.stop();
    const why = lastError ? ` (${lastError})` : '';
    const hint = /certificate|TLS|SSL/i.test(lastError ?? '') ? 'check --url and --ca-file' : 'check --url and that the broker runs';
    process.stderr.write(`edgeplane agent: cannot reach the broker at ${url} within ${timeoutMs} ms${why}; ${hint}\n`);
    return AGENT_EXIT.unreachable;
  }
  if (outcome === 'timeout') {
    // Connected in time, and start() is about to resolve.
    const late = await started;
    if (late === 'ok') return null;
    return fail(late);
  }
  return fail(outcome);

  function fail(err: Error): number {
    // Only a CONNACK refusal is the credentials: anything else (the journal could not be opened,
    // say) said "refused the connection … check --password" and exited 4.
    if (!(err instanceof ErrorWithReasonCode)) {
      process.stderr.write(`edgeplane agent: cannot start: ${err.message}\n`);
      return AGENT_EXIT.failed;
    }
    process.stderr.write(`edgeplane agent: the broker at ${url} refused the connection: ${err.message}; check --tower-id and --password\n`);
    return AGENT_EXIT.refused;
  }
}

function wireLogs(agent: EdgeAgent, logger: Logger): void {
  // One line each, no stack traces: connection trouble is expected at a tower.
  agent.on('error', (err) => logger.warn({ event: 'agent_error', error: err.message }, 'agent error'));
  agent.on('offline', () => logger.warn({ event: 'offline' }, 'connection to the broker lost: buffering, reconnecting'));
  agent.on('reconnecting', (info) => logger.info({ event: 'reconnecting', attempt: info.attempt, delay_ms: info.delayMs, error: info.error }, 'reconnecting'));
  agent.on('bundle', (tenantId, b) =>
    logger.info({ event: 'bundle_applied', tenant_id: tenantId, ...b }, b.kind === 'policy' ? 'policy bundle applied' : 'device directory slice applied'),
  );
  agent.on('reconciled', (r) => {
    if (!r.disagreement) return;
    logger.info(
      { event: 'local_decision_overturned', tenant_id: r.tenant_id, event_id: r.event_id, device_id: r.device_id, local_effect: r.local?.effect, cloud_effect: r.cloud.effect, bundle_version: r.local?.policy_version },
      "the cloud decided an event otherwise than this tower's bundle did (recorded in the cloud)",
    );
  });
  agent.on('dropped', (info) => logger.warn(info, 'offline buffer overflow: events dropped'));
  agent.on('command', (tenantId, c, ack, duplicate) => {
    const fields = { tenant_id: tenantId, command_id: c.id, type: c.type, device_id: c.device_id, app: c.app, duration_s: c.duration_s, status: ack.status, reason: ack.reason, duplicate };
    if (ack.status === 'applied') logger.info(fields, duplicate ? 'command already applied: acked again' : 'command applied');
    else logger.warn(fields, 'command failed');
  });
  agent.on('blockLifted', (b, cause) =>
    logger.info({ tenant_id: b.tenant_id, command_id: b.command_id, type: b.type, device_id: b.device_id, app: b.app, cause }, 'block lifted'),
  );
}

export async function agentCommand(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs(argv, options, false);
  if (values.help) {
    process.stdout.write(agentHelp);
    return AGENT_EXIT.ok;
  }
  const towerId = values['tower-id'];
  const password = (values.password as string | undefined) ?? process.env.EDGEPLANE_TOWER_PASSWORD;
  if (typeof towerId !== 'string') throw new UsageError('--tower-id is required');
  if (!TOPIC_ID_RE.test(towerId)) throw new UsageError(`--tower-id must match ${TOPIC_ID_RE}, got ${JSON.stringify(towerId)}`);
  if (!password) throw new UsageError('--password (or EDGEPLANE_TOWER_PASSWORD) is required');
  const stateDir = values['state-dir'] as string | undefined;
  if (stateDir === '') throw new UsageError('--state-dir must not be empty');
  const url = values.url as string;
  checkBrokerUrl('url', url);
  const connectTimeoutMs = msOption(values, 'connect-timeout-ms') ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const decisionTimeoutMs = msOption(values, 'decision-timeout-ms') ?? DEFAULT_DECISION_TIMEOUT_MS;
  const logLevel = checkLogLevel(values['log-level'] as string);
  const ca = await readCa(values['ca-file'] as string | undefined);
  const logger = createLogger(logLevel, { fd: 2, format: parseLogFormat(values['log-format']) }).child({ module: 'agent', tower_id: towerId });
  const agent = new EdgeAgent({
    url,
    towerId,
    password,
    ...(ca ? { ca } : {}),
    connectTimeoutMs: Math.min(connectTimeoutMs, DEFAULT_CONNECT_TIMEOUT_MS),
    unknownDeviceEffect: parseEffect(values['unknown-device-effect']),
    batchMaxEvents: countOption(values, 'batch-max-events'),
    batchMaxDelayMs: msOption(values, 'batch-max-delay-ms'),
    bufferMaxEvents: countOption(values, 'buffer-max-events'),
    localDecisionDeadlineMs: msOption(values, 'local-deadline-ms'),
    journalMaxBytes: journalMaxBytes(values),
    journalFsyncMs: msOption(values, 'journal-fsync-ms'),
    maxPacketBytes: maxPacketBytes(values),
    ...(stateDir !== undefined ? { stateDir } : {}),
    logger,
  });
  const output = new AnswerOutput(process.stdout, {
    onDrop: (dropped) => {
      if (dropped === 1 || dropped % 10_000 === 0) {
        logger.warn({ event: 'answers_dropped', answers_dropped: dropped, queued_bytes: output.queuedBytes }, 'stdout is not being read: answers dropped (the events are still sent and decided in the cloud)');
      }
    },
    onPause: (paused, queuedBytes) =>
      logger.debug({ event: paused ? 'output_paused' : 'output_resumed', queued_bytes: queuedBytes }, paused ? 'stdout full: input paused' : 'stdout drained: input resumed'),
  });
  const answers = new AnswerWriter(output);
  agent.on('decision', (tenantId, d, origin) => answers.decision(tenantId, d, origin));
  agent.on('rejected', (r) => answers.rejected(r));

  const lock = stateDir !== undefined ? await lockStateDir(stateDir, towerId) : null;
  const connected = await connect(agent, url, connectTimeoutMs);
  if (typeof connected === 'number') {
    await lock?.release();
    await flushLogger(logger, 1000);
    return connected;
  }
  wireLogs(agent, logger);
  if (connected === 'offline') {
    // A restart during an outage: the bundles of the last run decide until the broker is back.
    logger.warn(
      { event: 'started_offline', url, connect_timeout_ms: connectTimeoutMs, restored_tenants: agent.restoredTenants },
      'cannot reach the broker: deciding locally from the policy bundles restored from --state-dir, and reconnecting',
    );
    agent.once('connect', () => logger.info({ event: 'connected', url }, 'agent connected'));
  } else {
    // Input read from here on finds the tenants' bundles in place (earlier events would wait).
    await agent.whenReady();
    logger.info({ event: 'connected', url }, 'agent connected');
  }

  const splitter = new LineSplitter(MAX_LINE_BYTES);
  let inputClosed = false;
  const lines = (async function* (): AsyncGenerator<InputLine> {
    for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
      if (inputClosed) return;
      yield* splitter.push(chunk);
    }
    yield* splitter.end();
  })();
  let stopping: Promise<void> | null = null;
  const shutdown = (): Promise<void> =>
    (stopping ??= (async () => {
      inputClosed = true;
      process.stdin.pause();
      await agent.flush(decisionTimeoutMs);
      await answers.drained(decisionTimeoutMs);
      answers.giveUp(`no decision within ${decisionTimeoutMs} ms (--decision-timeout-ms)`);
      if (output.dropped > 0) logger.warn({ event: 'answers_dropped', answers_dropped: output.dropped }, 'answers dropped in all because stdout was not read');
      await agent.stop();
      await lock?.release();
      await flushLogger(logger, 1000);
    })());
  const onSignal = (): void => void shutdown().then(() => process.exit(AGENT_EXIT.ok));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  answers.onClosed = onSignal;

  let lineNo = 0;
  // Input waits while stdout is full: a reader that stops reading stops the agent's input, not its memory.
  for await (const input of output.paced(lines)) {
    if (stopping) break;
    lineNo++;
    if (!('text' in input)) {
      answers.invalid(lineNo, `line longer than ${MAX_LINE_BYTES} bytes: not read`);
      continue;
    }
    const line = input.text;
    if (!line.trim()) continue;
    let e: Parameters<EdgeAgent['observe']>[0];
    try {
      e = JSON.parse(line) as Parameters<EdgeAgent['observe']>[0];
      if (e === null || typeof e !== 'object' || Array.isArray(e)) throw new TypeError('a line must be a JSON object');
      // Usage another tower observed is not this tower's to report.
      const claimed = (e as { tower_id?: unknown }).tower_id;
      if (claimed !== undefined && claimed !== towerId) throw new TypeError(`tower_id ${JSON.stringify(claimed)} is not this agent's tower (${towerId})`);
    } catch (err) {
      answers.invalid(lineNo, err instanceof SyntaxError ? `not JSON: ${err.message}` : (err as Error).message);
      continue;
    }
    try {
      const { event_id } = agent.observe(e);
      answers.expect(event_id, { line: lineNo, device_id: e.device_id });
    } catch (err) {
      if (stopping) break;
      answers.invalid(lineNo, (err as Error).message.replace(/^observe: /, ''));
    }
  }
  await shutdown();
  return AGENT_EXIT.ok;
}
