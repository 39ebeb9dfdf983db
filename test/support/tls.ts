/**
 * A throwaway self-signed certificate for 127.0.0.1/localhost, made with the openssl CLI in the
 * test's temp dir, a control plane configuration serving TLS with it, and a tiny HTTPS JSON
 * client that trusts it (fetch cannot take a CA).
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { loadConfig, type Config } from '../../shared/config.js';

export interface TestCertificate {
  certFile: string;
  keyFile: string;
  cert: Buffer;
}

/** Null when openssl is not installed (the caller skips, saying so). */
export async function makeSelfSignedCertificate(dir: string): Promise<TestCertificate | null> {
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  try {
    await promisify(execFile)('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
    ]);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  return { certFile, keyFile, cert: await readFile(certFile) };
}

/**
 * An embedded control plane's configuration on loopback, every port chosen by the system, serving
 * TLS from `certFile`/`keyFile`; `extra` adds or overrides options.
 */
export function loopbackTlsConfig(o: { dataDir: string; certFile: string; keyFile: string; email: string; password: string }, extra: Record<string, unknown> = {}): Config {
  return loadConfig(
    {
      data_dir: o.dataDir,
      http_host: '127.0.0.1',
      http_port: 0,
      mqtt_host: '127.0.0.1',
      mqtt_port: 0,
      mqtt_ws_port: 0,
      mqtt_tls_port: 0,
      tls_cert_file: o.certFile,
      tls_key_file: o.keyFile,
      admin_email: o.email,
      admin_password: o.password,
      log_level: 'silent',
      ...extra,
    },
    {},
  );
}

/** One HTTPS JSON request that trusts `ca`. */
export function httpsJson<T>(
  method: string,
  url: string,
  opts: { ca: Buffer; token?: string; body?: unknown },
): Promise<{ status: number; body: T }> {
  return new Promise((resolve, reject) => {
    const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    const req = request(
      url,
      {
        method,
        ca: opts.ca,
        headers: {
          ...(payload !== undefined ? { 'content-type': 'application/json' } : {}),
          ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: (text ? JSON.parse(text) : undefined) as T }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}
