/**
 * Secrets that must survive restarts live in the data dir, created with mode 0600. Each is
 * generated on first start unless configuration supplies it.
 */
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createFileOnce, makeDirectory } from '../shared/atomic-file.js';
import { randomSecret } from '../shared/auth/secrets.js';

/** What `--service-secret` must hold at least (shared/config.ts); a file's secret as well. */
const MIN_SECRET_CHARS = 24;

export interface DataDirPaths {
  root: string;
  database: string;
  jwtKeys: string;
  serviceSecret: string;
  initialAdminPassword: string;
}

export async function prepareDataDir(dir: string): Promise<DataDirPaths> {
  const root = resolve(dir);
  await makeDirectory(root, { mode: 0o700 });
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
 * on first start: the file is written aside, synced and linked into place (link fails if it
 * exists; shared/atomic-file.ts), so nobody reads a half-written secret, all end up with the
 * winner's, and a power cut cannot leave an empty one. A file too short to be a secret (empty,
 * or edited by hand) is refused rather than used as one.
 */
export async function loadOrCreateSecret(file: string): Promise<string> {
  try {
    return await readSecret(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await createFileOnce(file, randomSecret(32) + '\n');
  return readSecret(file);
}

async function readSecret(file: string): Promise<string> {
  const secret = (await readFile(file, 'utf8')).trim();
  if (secret.length < MIN_SECRET_CHARS) {
    throw new Error(
      `${file} holds ${secret.length === 0 ? 'no secret' : `a secret of ${secret.length} characters`}; at least ${MIN_SECRET_CHARS} are needed. ` +
        'Put one there (every process sharing this data dir must use the same), or delete the file to have a new one generated, or set --service-secret',
    );
  }
  return secret;
}
