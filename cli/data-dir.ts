/**
 * Secrets that must survive restarts live in the data dir, created with mode 0600. Each is
 * generated on first start unless configuration supplies it.
 */
import { randomBytes } from 'node:crypto';
import { link, mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
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

/**
 * Reads the secret at `file`, or writes a fresh one there. Processes sharing a data dir may race
 * on first start: the file is written aside and linked into place (link fails if it exists), so
 * nobody reads a half-written secret and all end up with the winner's.
 */
export async function loadOrCreateSecret(file: string): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(tmp, randomSecret(32) + '\n', { mode: 0o600 });
  try {
    await link(tmp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
  return (await readFile(file, 'utf8')).trim();
}
