/**
 * One TCP connection's identity, the same on the raw socket a TLS server reports at accept
 * ('connection') and on the TLSSocket it reports once the handshake is done ('secureConnection'):
 * Node gives no public link between the two, and no two open TCP connections share both ends'
 * addresses and ports. Used by the broker's TLS listeners (broker/tls-handshakes.ts) and the
 * API's HTTPS shutdown (api/http-server-limits.ts).
 */
import type { Socket } from 'node:net';

export function connectionKey(socket: Socket): string {
  return `${socket.localAddress ?? '?'}|${socket.localPort ?? '?'}|${socket.remoteAddress ?? '?'}|${socket.remotePort ?? '?'}`;
}
