/**
 * `edgeplane` command-line entry point: dispatches to one command per process role.
 */
import { readFileSync } from 'node:fs';
import { UsageError } from './args.js';
import { COMMANDS } from './commands/index.js';

const commands = COMMANDS;

/** After a failure, how long stray handles may delay the exit. */
const EXIT_GRACE_MS = 2000;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

function help(): string {
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`);
  return `EdgePlane ${version()} — control plane for enterprise devices at carrier cell towers

Usage: edgeplane <command> [options]

Commands:
${lines.join('\n')}

Run 'edgeplane <command> --help' for a command's options.
`;
}

/**
 * A reader that went away (`edgeplane … | head`) makes writes fail with EPIPE; an 'error' event
 * without a listener would crash the process with a stack trace. Output to a closed pipe is
 * simply dropped; commands that care (the agent) listen for it themselves.
 */
function tolerateClosedPipes(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') throw err;
    });
  }
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(help());
    return name ? 0 : 2;
  }
  if (name === '--version' || name === '-v') {
    process.stdout.write(version() + '\n');
    return 0;
  }
  const cmd = commands[name];
  if (!cmd) {
    process.stderr.write(`edgeplane: unknown command '${name}'\n\n${help()}`);
    return 2;
  }
  return (await cmd.load())(rest);
}

tolerateClosedPipes();
main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof UsageError) {
      process.stderr.write(`edgeplane: ${err.message}\nRun with --help for usage.\n`);
      process.exitCode = 2;
    } else {
      process.stderr.write(`edgeplane: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    }
    // A failed start may leave a client still retrying in the background (a broker that never
    // answered): it must not keep the process alive. Unref'd, so a clean exit is not delayed.
    setTimeout(() => process.exit(), EXIT_GRACE_MS).unref();
  },
);
