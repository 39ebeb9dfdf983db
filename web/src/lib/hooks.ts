/** Data loading for views: one-shot, polled (respecting 429 Retry-After), and cursor-paged lists. */
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError } from './errors';

export interface AsyncState<T> {
  data: T | null;
  error: unknown;
  loading: boolean;
  reload: () => void;
}

/** Runs `load` on mount and whenever `deps` change; `reload()` runs it again. */
export function useAsync<T>(load: () => Promise<T>, deps: unknown[]): AsyncState<T> {
  const [state, setState] = useState<{ data: T | null; error: unknown; loading: boolean }>({ data: null, error: null, loading: true });
  const [nonce, setNonce] = useState(0);
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    load().then(
      (data) => live && setState({ data, error: null, loading: false }),
      (error: unknown) => live && setState((s) => ({ data: s.data, error, loading: false })),
    );
    return () => {
      live = false;
    };
  }, [...deps, nonce]);
  return { ...state, reload: useCallback(() => setNonce((n) => n + 1), []) };
}

/**
 * Like useAsync, repeated every `intervalMs` while the page is visible. After a 429 it waits
 * what the API asked (Retry-After) before trying again, so a console never adds to the overload.
 */
export function usePoll<T>(load: () => Promise<T>, intervalMs: number, deps: unknown[], opts: { secondAfterMs?: number } = {}): AsyncState<T> {
  const [state, setState] = useState<{ data: T | null; error: unknown; loading: boolean }>({ data: null, error: null, loading: true });
  const [nonce, setNonce] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;
  useEffect(() => {
    let live = true;
    let timer: ReturnType<typeof setTimeout> | null = null;
    let runs = 0;
    const run = async () => {
      timer = null;
      // A view computing rates from two readings can ask for the second one sooner.
      let wait = runs++ === 0 && opts.secondAfterMs !== undefined ? opts.secondAfterMs : intervalMs;
      if (document.visibilityState !== 'hidden') {
        try {
          const data = await loadRef.current();
          if (live) setState({ data, error: null, loading: false });
        } catch (error) {
          if (live) setState((s) => ({ data: s.data, error, loading: false }));
          if (error instanceof ApiError && error.status === 429) wait = Math.max(intervalMs, (error.retryAfterS ?? 60) * 1000);
        }
      }
      if (live) timer = setTimeout(() => void run(), wait);
    };
    void run();
    return () => {
      live = false;
      if (timer) clearTimeout(timer);
    };
  }, [...deps, intervalMs, nonce]);
  return { ...state, reload: useCallback(() => setNonce((n) => n + 1), []) };
}

export interface PageResult<T> {
  items: T[];
  next_cursor: string | null;
}

export interface Paged<T> {
  items: T[];
  setItems: (update: (items: T[]) => T[]) => void;
  error: unknown;
  loading: boolean;
  page: number;
  hasNext: boolean;
  hasPrev: boolean;
  next: () => void;
  prev: () => void;
  /** Back to the first page (filters changed, or a feed resumed). */
  reload: () => void;
}

/**
 * A list paged with the API's opaque cursors: the cursors of the pages visited are kept, so
 * "previous" re-reads the page before. `deps` (filters) restart at the first page.
 */
export function usePaged<T>(fetchPage: (cursor: string | null) => Promise<PageResult<T>>, deps: unknown[]): Paged<T> {
  const [cursors, setCursors] = useState<Array<string | null>>([null]);
  const [items, setItemsState] = useState<T[]>([]);
  const [nextCursor, setNextCursor] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(true);
  const [nonce, setNonce] = useState(0);
  const fetchRef = useRef(fetchPage);
  fetchRef.current = fetchPage;
  const cursor = cursors[cursors.length - 1] ?? null;

  const mounted = useRef(false);
  useEffect(() => {
    // New filters start again at the first page (the first run is the mount: nothing to reset).
    if (!mounted.current) {
      mounted.current = true;
      return;
    }
    setCursors([null]);
  }, deps);

  useEffect(() => {
    let live = true;
    setLoading(true);
    fetchRef.current(cursor).then(
      (page) => {
        if (!live) return;
        setItemsState(page.items);
        setNextCursor(page.next_cursor);
        setError(null);
        setLoading(false);
      },
      (err: unknown) => {
        if (!live) return;
        setError(err);
        setLoading(false);
      },
    );
    return () => {
      live = false;
    };
  }, [cursors, nonce]);

  return {
    items,
    setItems: useCallback((update: (items: T[]) => T[]) => setItemsState(update), []),
    error,
    loading,
    page: cursors.length,
    hasNext: nextCursor !== null,
    hasPrev: cursors.length > 1,
    next: () => nextCursor !== null && setCursors((c) => [...c, nextCursor]),
    prev: () => setCursors((c) => (c.length > 1 ? c.slice(0, -1) : c)),
    reload: useCallback(() => {
      setCursors((c) => (c.length === 1 ? c : [null]));
      setNonce((n) => n + 1);
    }, []),
  };
}
