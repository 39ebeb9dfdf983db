/**
 * The README's distributed mode starts the workers beside the broker nodes, and `--mqtt-url a,b`
 * fails over in order. The worker's downlink used mqtt.js' connectAsync, which gives up at the first
 * refused connection: a worker started before its brokers listened exited at once
 * ("edgeplane: connect ECONNREFUSED"), without trying the next URL or waiting the 15 s its
 * startup error speaks of. Real Aedes on loopback; a closed port for the node that is not up.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { startDownlink } from '../cli/roots/distributed.js';
import { startTestBroker, type TestBroker } from '../edge-agent/test-broker.js';
import { MqttDownlink } from '../shared/mqtt/mqtt-downlink.js';
import { closedPort } from './support/ports.js';

const SECRET = 'downlink-start-secret-0123456789';
let broker: TestBroker | undefined;
let downlink: MqttDownlink | undefined;

afterEach(async () => {
  vi.useRealTimers();
  await downlink?.stop();
  await broker?.close();
  downlink = undefined;
  broker = undefined;
});

describe('worker downlink start', () => {
  it('a node that refuses the connection is skipped for the next URL, and decisions go out through it', async () => {
    broker = await startTestBroker();
    const down = `mqtt://127.0.0.1:${await closedPort()}`;
    downlink = new MqttDownlink({ urls: [down, broker.url], name: 'worker-test', serviceSecret: SECRET });
    const received = new Promise<string>((resolve) => broker!.aedes.on('publish', (p, c) => c && resolve(p.topic)));
    await downlink.start();
    expect(downlink.connected).toBe(true);
    await downlink.publish('tenants/t1/towers/T1/decisions', Buffer.from('{}'));
    expect(await received).toBe('tenants/t1/towers/T1/decisions');
  });

  it('a refused CONNACK (wrong service secret) still fails the start at once, with its reason', async () => {
    broker = await startTestBroker();
    broker.aedes.authenticate = (_client, _user, _password, done) => done(null, false);
    downlink = new MqttDownlink({ urls: [broker.url], name: 'worker-test', serviceSecret: SECRET });
    await expect(downlink.start()).rejects.toThrow(/Connection refused/);
    expect(downlink.connected).toBe(false);
  });

  it('stopped while no node answers, the start gives up and the client stops reconnecting', async () => {
    downlink = new MqttDownlink({ urls: [`mqtt://127.0.0.1:${await closedPort()}`], name: 'worker-test', serviceSecret: SECRET });
    const start = downlink.start();
    await downlink.stop();
    await expect(start).rejects.toThrow(/stopped before a broker node took its connection/);
    expect(downlink.connected).toBe(false);
  });

  it('no node within the 15 s bound: the worker start fails naming --mqtt-url, and its client stops reconnecting', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const url = `mqtt://127.0.0.1:${await closedPort()}`;
    downlink = new MqttDownlink({ urls: [url], name: 'worker-test', serviceSecret: SECRET });
    const stopped = vi.spyOn(downlink, 'stop');
    const start = startDownlink(downlink, url);
    const failure = expect(start).rejects.toThrow(`--mqtt-url ${url}: no broker node answered within 15 s`);
    await vi.advanceTimersByTimeAsync(15_000);
    await failure;
    // Left running, its client would reconnect every 500 ms and hold the process open.
    expect(stopped).toHaveBeenCalledOnce();
    expect(vi.getTimerCount()).toBe(0);
  });
});
