/**
 * Flag parsing shared by every command: each command declares its own options; the control
 * plane's configuration options come from the one config schema (shared/config.ts).
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { CONFIG_OPTIONS, type ConfigKey } from '../shared/config.js';

export interface CommandOption {
  type: 'string' | 'boolean';
  describe: string;
  default?: string | boolean;
}

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export function parseCommandArgs(
  argv: string[],
  options: Record<string, CommandOption>,
  withConfig: boolean,
): { values: Record<string, string | boolean | undefined>; config: Partial<Record<ConfigKey, unknown>> } {
  const spec: NonNullable<ParseArgsConfig['options']> = { help: { type: 'boolean', short: 'h' } };
  for (const [name, o] of Object.entries(options)) spec[name] = { type: o.type };
  if (withConfig) for (const c of Object.values(CONFIG_OPTIONS)) spec[c.flag] = { type: 'string' };
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: spec, allowPositionals: false, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  for (const [name, o] of Object.entries(options)) if (values[name] === undefined && o.default !== undefined) values[name] = o.default;
  const config: Partial<Record<ConfigKey, unknown>> = {};
  if (withConfig) {
    for (const [key, c] of Object.entries(CONFIG_OPTIONS) as Array<[ConfigKey, { flag: string }]>) {
      if (values[c.flag] !== undefined) config[key] = values[c.flag];
    }
  }
  return { values, config };
}

export function optionsHelp(options: Record<string, CommandOption>): string {
  return Object.entries(options)
    .map(([name, o]) => {
      const d = o.default === undefined ? '' : ` (default: ${String(o.default)})`;
      const arg = o.type === 'string' ? ' <value>' : '';
      return `  --${(name + arg).padEnd(26)} ${o.describe}${d}`;
    })
    .join('\n');
}

export function numberOption(values: Record<string, unknown>, name: string): number | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new UsageError(`--${name} must be a non-negative number, got ${JSON.stringify(v)}`);
  return n;
}
