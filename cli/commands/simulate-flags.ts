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
import { checkBrokerUrl, checkLogLevel } from '../broker-url.js';

export interface SimulateFlags {
  api: string;
  mqtt: string;
  logLevel: string;
  report: string | undefined;
  stateDir: string | undefined;
}

async function kindOf(path: string): Promise<'dir' | 'other' | 'none'> {
  try {
    return (await stat(path)).isDirectory() ? 'dir' : 'other';
  } catch {
    return 'none';
  }
}

export async function checkSimulateFlags(f: SimulateFlags): Promise<LevelWithSilent> {
  let api: URL;
  try {
    api = new URL(f.api);
  } catch {
    throw new UsageError(`--api ${JSON.stringify(f.api)} is not a URL (like http://127.0.0.1:8080)`);
  }
  if (api.protocol !== 'http:' && api.protocol !== 'https:') throw new UsageError(`--api ${f.api}: the scheme must be http:// or https://, not ${api.protocol}//`);
  checkBrokerUrl('mqtt', f.mqtt);
  const level = checkLogLevel(f.logLevel);
  if (f.report !== undefined) {
    const dir = dirname(resolve(f.report));
    if ((await kindOf(dir)) !== 'dir') throw new UsageError(`--report ${f.report}: directory ${dir} does not exist`);
    if ((await kindOf(f.report)) === 'dir') throw new UsageError(`--report ${f.report} is a directory`);
  }
  if (f.stateDir !== undefined && (await kindOf(f.stateDir)) === 'other') throw new UsageError(`--state-dir ${f.stateDir} exists and is not a directory`);
  return level;
}
