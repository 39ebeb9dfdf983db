/**
 * A bare Aedes broker (no auth, no ACL, no pipeline) for the relay ceiling benchmark. Run as a
 * child process so it owns a core, like the control plane does in the pipeline benchmark.
 * Prints {"port": N} on stdout once listening; exits on SIGTERM.
 */
import { createServer } from 'node:net';
import { Aedes } from 'aedes';

const broker = await Aedes.createBroker();
const server = createServer(broker.handle);
server.listen(0, '127.0.0.1', () => {
  const addr = server.address();
  process.stdout.write(JSON.stringify({ port: typeof addr === 'object' && addr ? addr.port : 0 }) + '\n');
});
process.on('SIGTERM', () => {
  server.close();
  broker.close(() => process.exit(0));
});
