/**
 * A throwaway PKI for mutual-TLS tests (RadSec), made with the openssl CLI in the test's temp dir:
 * a CA, a server certificate for 127.0.0.1/localhost, and client certificates issued by it (or
 * by a second CA nobody trusts). Null when openssl is not installed (the caller skips, saying so).
 */
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface PemPair {
  certFile: string;
  keyFile: string;
  cert: Buffer;
  key: Buffer;
}

export interface TestCa extends PemPair {
  /** Issues a certificate signed by this CA; `dns` becomes its subjectAltName DNS entries. */
  issue(name: string, opts: { cn: string; dns?: string[]; ip?: string[] }): Promise<PemPair>;
}

export const OPENSSL_SKIP_LINE = 'openssl not found (apt-get install -y openssl)';

async function keyAndRequest(dir: string, name: string, subject: string, extra: string[]): Promise<void> {
  await run('openssl', [
    'req', ...extra, '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', join(dir, `${name}.key`), '-out', join(dir, extra.includes('-x509') ? `${name}.pem` : `${name}.csr`), '-subj', subject,
  ]);
}

async function pair(dir: string, name: string): Promise<PemPair> {
  const certFile = join(dir, `${name}.pem`);
  const keyFile = join(dir, `${name}.key`);
  return { certFile, keyFile, cert: await readFile(certFile), key: await readFile(keyFile) };
}

/** A new CA in `dir` (files named after `name`), or null without openssl. */
export async function makeTestCa(dir: string, name = 'ca'): Promise<TestCa | null> {
  try {
    await keyAndRequest(dir, name, `/CN=EdgePlane test CA ${name}`, ['-x509', '-days', '2']);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  const ca = await pair(dir, name);
  return {
    ...ca,
    async issue(leaf, opts) {
      await keyAndRequest(dir, leaf, `/CN=${opts.cn}`, []);
      const san = [...(opts.dns ?? []).map((d) => `DNS:${d}`), ...(opts.ip ?? []).map((i) => `IP:${i}`)];
      const ext = join(dir, `${leaf}.ext`);
      await writeFile(ext, `basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n${san.length > 0 ? `subjectAltName=${san.join(',')}\n` : ''}`);
      await run('openssl', [
        'x509', '-req', '-in', join(dir, `${leaf}.csr`), '-CA', ca.certFile, '-CAkey', ca.keyFile, '-CAcreateserial',
        '-out', join(dir, `${leaf}.pem`), '-days', '2', '-extfile', ext,
      ]);
      return pair(dir, leaf);
    },
  };
}
