/**
 * `edgeplane` command-line entry point: dispatches to one command per process role.
 */
// First: mqtt-packet must find its length encoder replaced when it loads (var-byte-int-table.ts says why).
import '../shared/mqtt/var-byte-int-table.js';
import { packageVersion } from '../shared/project-root.js';
import { COMMANDS } from './commands/index.js';
import { runMain } from './run-main.js';

const commands = COMMANDS;

function version(): string {
  return packageVersion();
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

runMain('edgeplane', main);
