/**
 * Secrets that must survive restarts live in the data dir, created with mode 0600. Each is
 * generated on first start unless configuration supplies it.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { randomSecret } from '../shared/auth/secrets.js';

export interface DataDirPaths {
  root: string;
  database: string;
  jwtKeys: string;
  serviceSecret: string;
  initialAdminPassword: string;
}

export async function prepareDataDir(dir: string): Promise<DataDirPaths> {
  const root = resolve(dir);
  await mkdir(root, { recursive: true, mode: 0o700 });
  return {
    root,
    database: join(root, 'edgeplane.db'),
    jwtKeys: join(root, 'jwt-keys.json'),
    serviceSecret: join(root, 'service-secret'),
    initialAdminPassword: join(root, 'initial-admin-password'),
  };
}

/** Reads the secret at `file`, or writes a fresh one there (exclusive create: no clobbering). */
export async function loadOrCreateSecret(file: string): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const secret = randomSecret(32);
  await writeFile(file, secret + '\n', { mode: 0o600, flag: 'wx' });
  return secret;
}
