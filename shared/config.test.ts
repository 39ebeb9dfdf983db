import { describe, expect, it } from 'vitest';
import { loadConfig } from './config.js';

describe('configuration: RadSec', () => {
  const tls = { tls_cert_file: '/etc/edgeplane/cert.pem', tls_key_file: '/etc/edgeplane/key.pem' };

  it('is off by default, and on with a port, the TLS certificate and the peers’ CA', () => {
    expect(loadConfig({}, {}).radsec_port).toBe(0);
    const on = loadConfig({ ...tls, radsec_port: 2083, radsec_ca_file: '/etc/edgeplane/nas-ca.pem' }, {});
    expect(on).toMatchObject({ radsec_port: 2083, radsec_host: '0.0.0.0', radsec_ca_file: '/etc/edgeplane/nas-ca.pem' });
  });

  it('refuses a port without the certificate or the CA, and a CA without a port, naming the option', () => {
    expect(() => loadConfig({ radsec_port: 2083, radsec_ca_file: '/ca.pem' }, {})).toThrow(/--radsec-port.*needs --tls-cert-file/s);
    expect(() => loadConfig({ ...tls, radsec_port: 2083 }, {})).toThrow(/--radsec-ca-file.*required with --radsec-port/s);
    expect(() => loadConfig({ ...tls, radsec_ca_file: '/ca.pem' }, {})).toThrow(/--radsec-ca-file.*needs --radsec-port/s);
  });

  it('reads the same settings from the environment', () => {
    const c = loadConfig({}, { EDGEPLANE_TLS_CERT_FILE: '/c.pem', EDGEPLANE_TLS_KEY_FILE: '/k.pem', EDGEPLANE_RADSEC_PORT: '2083', EDGEPLANE_RADSEC_CA_FILE: '/ca.pem', EDGEPLANE_RADSEC_HOST: '127.0.0.1' });
    expect(c).toMatchObject({ radsec_port: 2083, radsec_ca_file: '/ca.pem', radsec_host: '127.0.0.1' });
  });
});
