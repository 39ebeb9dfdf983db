/**
 * Command-line checks shared by the commands that connect to a broker (`agent`, `simulate`):
 * broker URLs mqtt.js can use, and pino's log levels. A wrong value is a UsageError (exit 2)
 * naming the flag, found before anything connects or is provisioned.
 */
import type { LevelWithSilent } from 'pino';
import { UsageError } from './args.js';

const SCHEMES = new Set(['mqtt:', 'mqtts:', 'ws:', 'wss:', 'tcp:']);
export const LOG_LEVELS: readonly LevelWithSilent[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/**
 * Refuses what mqtt.js would otherwise retry forever or throw on: not a URL, a wrong scheme, no
 * host, and a comma-separated failover list (edge-agent/tower-session.ts failoverServers) with
 * other than mqtt:// or mqtts:// URLs.
 */
export function checkBrokerUrl(flag: string, value: string): void {
  const urls = value.split(',').map((u) => u.trim());
  for (const raw of urls) {
    let u: URL;
    try {
      u = new URL(raw);
    } catch {
      throw new UsageError(`--${flag} ${JSON.stringify(raw)} is not a URL; use mqtt://host:1883, mqtts://host:8883, ws://host:8083 or wss://host:8083`);
    }
    if (!SCHEMES.has(u.protocol)) throw new UsageError(`--${flag} ${raw}: the scheme must be mqtt://, mqtts://, ws:// or wss://, not ${u.protocol}//`);
    if (!u.hostname) throw new UsageError(`--${flag} ${raw} names no host`);
    if (urls.length > 1 && u.protocol !== 'mqtt:' && u.protocol !== 'mqtts:') throw new UsageError(`--${flag}: a failover list takes mqtt:// or mqtts:// URLs, got ${raw}`);
  }
}

/** `value` as a pino level, or a UsageError listing the levels. */
export function checkLogLevel(value: string): LevelWithSilent {
  const level = LOG_LEVELS.find((l) => l === value);
  if (level === undefined) throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(value)}`);
  return level;
}
