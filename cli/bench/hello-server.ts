/**
 * The API part's baseline: a Fastify hello world (`GET /hello` → {"hello":"world"}), the same
 * Fastify as the control plane, with no logging, auth or schemas — in a child process of its own
 * like the control plane. Prints {"port": N} once listening; exits on SIGTERM.
 */
import Fastify from 'fastify';

const app = Fastify({ logger: false });
app.get('/hello', async () => ({ hello: 'world' }));
const address = await app.listen({ host: '127.0.0.1', port: 0 });
process.stdout.write(JSON.stringify({ port: Number(new URL(address).port) }) + '\n');
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
