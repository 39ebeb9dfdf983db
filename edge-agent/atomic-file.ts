/**
 * The tower's state files are replaced whole: written to `<file>.tmp` (mode 0600: what they hold
 * is the tower's own) and renamed over the file, so a crash leaves the old content or the new,
 * never part of one. With `sync` the data is on disk before the rename: towers lose power, and a
 * rename must not then publish a file whose data never reached the disk.
 */
import { open, rename } from 'node:fs/promises';

export async function replaceFile(file: string, data: string | Buffer, opts: { sync: boolean }): Promise<void> {
  const tmp = `${file}.tmp`;
  const handle = await open(tmp, 'w', 0o600);
  try {
    await handle.writeFile(data);
    if (opts.sync) await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmp, file);
}
