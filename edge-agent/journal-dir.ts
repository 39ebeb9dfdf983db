import { join } from 'node:path';

/** The journal's directory under a state dir. */
export function journalDir(stateDir: string, towerId: string): string {
  return join(stateDir, `journal-${towerId}`);
}
