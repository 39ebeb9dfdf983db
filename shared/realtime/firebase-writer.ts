/**
 * The Firebase Realtime Database adapter of the RealtimeWriter port. firebase-admin stays behind
 * this file: its loosely typed values (`Object`) never reach the sink.
 *
 * Each writer owns a named firebase-admin app, so several writers (tests, or one process mirroring
 * to two databases) coexist without touching the SDK's default app. With
 * FIREBASE_DATABASE_EMULATOR_HOST set, the SDK talks to the emulator and needs no credential.
 * Without a credentials file and without the emulator, Application Default Credentials are used.
 */
import { randomUUID } from 'node:crypto';
import { cert, deleteApp, getApps, initializeApp, type AppOptions } from 'firebase-admin/app';
import { ServerValue, getDatabase } from 'firebase-admin/database';
import { isIncrement, type RealtimeWriter } from './realtime-writer.js';

export interface FirebaseWriterOptions {
  /** e.g. https://<project>-default-rtdb.firebaseio.com (or http://127.0.0.1:9000?ns=<ns> for the emulator). */
  databaseURL: string;
  /** Service-account JSON file. Not needed with the emulator. */
  credentialsFile?: string;
  /** firebase-admin app name; defaults to a unique one per writer. */
  appName?: string;
}

/** Replaces increment sentinels with the SDK's own and drops undefined (which the SDK refuses). */
function toFirebaseValue(value: unknown): unknown {
  if (isIncrement(value)) return ServerValue.increment(value['.sv'].increment);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = toFirebaseValue(v);
  return out;
}

export function createFirebaseWriter(opts: FirebaseWriterOptions): RealtimeWriter {
  const options: AppOptions = { databaseURL: opts.databaseURL };
  // cert() reads the file now: a wrong path fails at startup, not at the first flush.
  if (opts.credentialsFile !== undefined) options.credential = cert(opts.credentialsFile);
  const name = opts.appName ?? `edgeplane-realtime-${randomUUID()}`;
  // initializeApp returns an existing app of the same name and options instead of failing; two
  // writers sharing one app would close it under each other, so a taken name is refused.
  if (getApps().some((a) => a.name === name)) throw new Error(`firebase app name '${name}' is already in use`);
  const app = initializeApp(options, name);
  const root = getDatabase(app).ref();
  let closed = false;

  return {
    async update(values) {
      if (closed) throw new Error('firebase writer is closed');
      const payload: Record<string, unknown> = {};
      for (const [path, v] of Object.entries(values)) payload[path] = toFirebaseValue(v);
      await root.update(payload);
    },
    async close() {
      if (closed) return;
      closed = true;
      // Closes the database connection and frees the app name.
      await deleteApp(app);
    },
  };
}
