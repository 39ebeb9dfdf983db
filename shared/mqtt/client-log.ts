/**
 * mqtt.js logs every packet it reads or writes through the `debug` package. With debugging off
 * each call still costs its arguments array (`debug(...args)` checks `enabled` after the rest
 * parameter is built): in the bench's load generator (20 agents at 10,000 events/s) the mqtt.js
 * client's calls were ~6 % of all bytes allocated. mqtt.js takes a logger in its options; this gives
 * it a no-op one unless DEBUG could name mqtt.js (`DEBUG=mqttjs*` keeps its logging as before).
 * mqtt-packet's own parser and writer log through `debug` too, with no option to turn that off.
 */
const noop = (): void => {};

export function mqttClientLog(env: NodeJS.ProcessEnv = process.env): { log?: (...args: unknown[]) => void } {
  const debug = env.DEBUG ?? '';
  return debug.includes('mqttjs') || debug.includes('*') ? {} : { log: noop };
}
