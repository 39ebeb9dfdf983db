/** Display helpers: times, counts, rates, ids. */
export function fmtTime(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '—';
  const d = new Date(ms);
  // A tower's clock is its own: an epoch ms past what a Date holds (8.64e15) would make
  // toISOString throw, and with it the render of the whole view. Shown as the number it is.
  if (Number.isNaN(d.getTime())) return `${ms} ms (not a valid time)`;
  const today = new Date();
  const time = d.toLocaleTimeString(undefined, { hour12: false });
  return d.toDateString() === today.toDateString() ? time : `${d.toISOString().slice(0, 10)} ${time}`;
}

export function fmtAgo(ms: number | null | undefined, now = Date.now()): string {
  if (ms === null || ms === undefined) return 'never';
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86_400)} d ago`;
}

export function fmtNum(n: number): string {
  return n.toLocaleString(undefined, { maximumFractionDigits: 0 });
}

export function fmtRate(n: number): string {
  return n < 10 ? n.toFixed(1) : fmtNum(n);
}

export function fmtPct(ratio: number): string {
  return `${(ratio * 100).toFixed(ratio < 0.1 ? 1 : 0)} %`;
}

export function fmtDuration(s: number | null): string {
  if (s === null) return '—';
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${Math.round(s / 3600)} h`;
}

/** The tail of a ULID-like id: enough to tell rows apart at a glance. */
export function shortId(id: string | null | undefined): string {
  if (!id) return '—';
  return id.length > 12 ? `…${id.slice(-8)}` : id;
}
