/**
 * The store's part of /readyz: whether it answers a read now. One cheap indexed lookup (a tenant
 * by an id no tenant has), bounded in time, so a store that fails its reads (an I/O error, a
 * corrupt or closed SQLite file, an unreachable MongoDB) makes the process unready instead of
 * answering every probe 200 while each request fails.
 *
 * A full or busy store is not unready: reads keep working then (README "Full store"), and taking
 * the process out of rotation would also keep away the tower redeliveries that end the episode.
 *
 * /readyz is public and not rate limited, so probes share one read: callers that arrive while one
 * is under way get its answer rather than a read of their own.
 */
import type { Store } from '../../shared/store/port.js';
import { withDeadline } from '../../shared/deadline.js';

/** A read not answered within this is a store that does not answer. */
export const STORE_PROBE_TIMEOUT_MS = 2000;

/** Never a tenant id (those are generated), so the lookup reads an index and finds nothing. */
const PROBE_ID = 'readiness-probe';

export function storeProbe(store: Store, timeoutMs = STORE_PROBE_TIMEOUT_MS): () => Promise<boolean> {
  let inFlight: Promise<boolean> | null = null;
  const probe = (): Promise<boolean> =>
    withDeadline(
      store.tenants.get(PROBE_ID).then(
        () => true,
        () => false,
      ),
      timeoutMs,
      () => false,
    );
  return () => (inFlight ??= probe().finally(() => (inFlight = null)));
}
