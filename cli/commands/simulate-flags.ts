/**
 * The flags of `edgeplane simulate` that name places (URLs, files, directories) and the log
 * level, checked before anything is provisioned: a typo there used to surface only after the
 * whole scenario had been provisioned (a broker URL mqtt.js cannot use, a --report directory
 * that does not exist: the run played, then its JSON report was lost), or as a library's words
 * with exit 1 (a log level pino does not know). Each is a UsageError (exit 2) naming the flag.
 */
import { stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { LevelWithSilent } from 'pino';
import { UsageError } from '../args.js';

const LOG_LEVELS: readonly LevelWithSilent[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const BROKER_SCHEMES = new Set(['mqtt:', 'mqtts:', 'ws:', 'wss:']);

export interface SimulateFlags {
  api: string;
  mqtt: string;
  logLevel: string;
  report: string | undefined;
  stateDir: string | undefined;
}

function parseUrl(flag: string, raw: string, example: string): URL {
  try {
    return new URL(raw);
  } catch {
    throw new UsageError(`--${flag} ${JSON.stringify(raw)} is not a URL (like ${example})`);
  }
}

/** The broker URL(s) as the agent takes them (edge-agent/tower-session.ts): one, or a failover list of mqtt(s)://. */
function checkBrokerUrls(value: string): void {
  const urls = value.split(',').map((u) => u.trim());
  for (const raw of urls) {
    const u = parseUrl('mqtt', raw, 'mqtt://127.0.0.1:1883');
    if (!BROKER_SCHEMES.has(u.protocol)) throw new UsageError(`--mqtt ${raw}: the scheme must be mqtt://, mqtts://, ws:// or wss://, not ${u.protocol}//`);
    if (!u.hostname) throw new UsageError(`--mqtt ${raw} names no host`);
    if (urls.length > 1 && u.protocol !== 'mqtt:' && u.protocol !== 'mqtts:') throw new UsageError(`--mqtt: a failover list takes mqtt:// or mqtts:// URLs, got ${raw}`);
  }
}

async function kindOf(path: string): Promise<'dir' | 'other' | 'none'> {
  try {
    return (await stat(path)).isDirectory() ? 'dir' : 'other';
  } catch {
    return 'none';
  }
}

export async function checkSimulateFlags(f: SimulateFlags): Promise<LevelWithSilent> {
  const api = parseUrl('api', f.api, 'http://127.0.0.1:8080');
  if (api.protocol !== 'http:' && api.protocol !== 'https:') throw new UsageError(`--api ${f.api}: the scheme must be http:// or https://, not ${api.protocol}//`);
  checkBrokerUrls(f.mqtt);
  const level = LOG_LEVELS.find((l) => l === f.logLevel);
  if (level === undefined) throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(f.logLevel)}`);
  if (f.report !== undefined) {
    const dir = dirname(resolve(f.report));
    if ((await kindOf(dir)) !== 'dir') throw new UsageError(`--report ${f.report}: directory ${dir} does not exist`);
    if ((await kindOf(f.report)) === 'dir') throw new UsageError(`--report ${f.report} is a directory`);
  }
  if (f.stateDir !== undefined && (await kindOf(f.stateDir)) === 'other') throw new UsageError(`--state-dir ${f.stateDir} exists and is not a directory`);
  return level;
}
