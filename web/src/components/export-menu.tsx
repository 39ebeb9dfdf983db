/**
 * Export buttons for a list the API can stream as a file (JSON, CSV, XML with the list's current
 * filters), saved by the browser through a single-use link (Api.download), so of any size.
 * Shown only when the API's OpenAPI document says the list takes `?format=`.
 */
import { useState } from 'preact/hooks';
import type { ExportFormat, Query } from '../lib/api';
import { useConsole } from '../lib/context';
import { describeError } from '../lib/errors';
import { useAsync } from '../lib/hooks';

export function ExportMenu(props: { path: string; query: Query; name: string }) {
  const { api, features } = useConsole();
  const supported = useAsync(() => features.exports(props.path), [props.path]);
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  if (supported.data !== true) return null;
  const run = async (format: ExportFormat) => {
    setBusy(format);
    setError(null);
    try {
      await api.download(props.path, props.query, format);
    } catch (err) {
      setError(describeError(err));
    } finally {
      setBusy(null);
    }
  };
  return (
    <span class="export" data-testid="export">
      Export
      {(['csv', 'json', 'xml'] as const).map((f) => (
        <button type="button" class="link" disabled={busy !== null} onClick={() => void run(f)} key={f}>
          {busy === f ? '…' : f.toUpperCase()}
        </button>
      ))}
      {error !== null && <span class="inline-error">{error}</span>}
    </span>
  );
}
