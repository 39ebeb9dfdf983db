/**
 * How a command-line entry point runs its main function: output to a closed pipe is tolerated,
 * a UsageError exits 2 with a hint, any other failure exits 1 with its message. Shared by the
 * `edgeplane` CLI and the standalone agent bundle, so both behave the same at the edges.
 */
import { UsageError } from './args.js';

/** After a failure, how long stray handles may delay the exit. */
const EXIT_GRACE_MS = 2000;

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

/** Runs `main(argv)` and sets the exit status from its result; `name` prefixes error lines. */
export function runMain(name: string, main: (argv: string[]) => Promise<number>): void {
  tolerateClosedPipes();
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      if (err instanceof UsageError) {
        process.stderr.write(`${name}: ${err.message}\nRun with --help for usage.\n`);
        process.exitCode = 2;
      } else {
        process.stderr.write(`${name}: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exitCode = 1;
      }
      // A failed start may leave a client still retrying in the background (a broker that never
      // answered): it must not keep the process alive. Unref'd, so a clean exit is not delayed.
      setTimeout(() => process.exit(), EXIT_GRACE_MS).unref();
    },
  );
}
