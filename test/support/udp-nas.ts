/**
 * A NAS over UDP for the RADIUS tests: a socket on 127.0.0.1 that sends requests to the plugin's
 * port and awaits the reply to a given Identifier (no sleeps: each reply wakes the waiters).
 */
import { createSocket, type Socket } from 'node:dgram';

export interface UdpNas {
  /** Closed by the test (afterEach). */
  sock: Socket;
  /** The Identifier of every reply, in arrival order. */
  replies: number[];
  send(packet: Buffer): void;
  /** Resolves once a reply with this Identifier has arrived. */
  replyTo(id: number): Promise<void>;
}

export async function udpNas(port: number): Promise<UdpNas> {
  const sock = createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  const replies: number[] = [];
  const waiters: Array<() => void> = [];
  sock.on('message', (m) => {
    replies.push(m[1]!);
    for (const w of waiters.splice(0)) w();
  });
  return {
    sock,
    replies,
    send: (packet) => sock.send(packet, port, '127.0.0.1'),
    replyTo: async (id) => {
      while (!replies.includes(id)) await new Promise<void>((r) => waiters.push(r));
    },
  };
}
