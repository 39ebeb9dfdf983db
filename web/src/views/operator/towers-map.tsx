/**
 * The NOC's map: every tower at its coordinates, coloured by state, with its coverage radius and
 * the outline of the fleet's footprint. Drawn as SVG in a local equirectangular projection fitted
 * to the towers (scaled by cos(latitude), so distances look right at the fleet's latitude): no
 * tile server, nothing fetched from anywhere but the control plane.
 */
import type { JSX } from 'preact';
import { useMemo, useState } from 'preact/hooks';
import { Badge, Card, Empty, ErrorBanner, Stat } from '../../components/ui';
import { useConsole } from '../../lib/context';
import { fmtAgo, fmtNum } from '../../lib/format';
import { useAsync, usePoll } from '../../lib/hooks';
import type { Route } from '../../lib/router';
import type { Carrier, Tower } from '../../lib/types';

const TOWERS_POLL_MS = 15_000;
const WIDTH = 900;
const HEIGHT = 520;
const PAD = 40;
const METERS_PER_DEGREE = 111_320;

interface Point {
  x: number;
  y: number;
}

/** Andrew's monotone chain: the convex hull, counter-clockwise. */
export function convexHull(points: Point[]): Point[] {
  const p = [...points].sort((a, b) => a.x - b.x || a.y - b.y);
  if (p.length < 3) return p;
  const cross = (o: Point, a: Point, b: Point) => (a.x - o.x) * (b.y - o.y) - (a.y - o.y) * (b.x - o.x);
  const lower: Point[] = [];
  for (const pt of p) {
    while (lower.length >= 2 && cross(lower[lower.length - 2]!, lower[lower.length - 1]!, pt) <= 0) lower.pop();
    lower.push(pt);
  }
  const upper: Point[] = [];
  for (const pt of [...p].reverse()) {
    while (upper.length >= 2 && cross(upper[upper.length - 2]!, upper[upper.length - 1]!, pt) <= 0) upper.pop();
    upper.push(pt);
  }
  return [...lower.slice(0, -1), ...upper.slice(0, -1)];
}

/** A round graticule step giving about `lines` lines over `span` degrees. */
function niceStep(span: number, lines: number): number {
  const target = span / lines;
  const steps = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 45];
  return steps.find((s) => s >= target) ?? 90;
}

export interface Projection {
  project: (lat: number, lon: number) => Point;
  unproject: (p: Point) => { lat: number; lon: number };
  /** Pixels per metre (for coverage radii). */
  pxPerMeter: number;
  bounds: { minLat: number; maxLat: number; minLon: number; maxLon: number };
}

export function fitProjection(towers: Array<{ lat: number; lon: number }>): Projection {
  let minLat = Math.min(...towers.map((t) => t.lat));
  let maxLat = Math.max(...towers.map((t) => t.lat));
  let minLon = Math.min(...towers.map((t) => t.lon));
  let maxLon = Math.max(...towers.map((t) => t.lon));
  // A lone tower (or towers on one street) still gets a few kilometres of context.
  const minSpan = 0.05;
  if (maxLat - minLat < minSpan) [minLat, maxLat] = [(minLat + maxLat) / 2 - minSpan / 2, (minLat + maxLat) / 2 + minSpan / 2];
  if (maxLon - minLon < minSpan) [minLon, maxLon] = [(minLon + maxLon) / 2 - minSpan / 2, (minLon + maxLon) / 2 + minSpan / 2];
  const k = Math.cos((((minLat + maxLat) / 2) * Math.PI) / 180);
  const scale = Math.min((WIDTH - 2 * PAD) / ((maxLon - minLon) * k), (HEIGHT - 2 * PAD) / (maxLat - minLat));
  const offX = (WIDTH - (maxLon - minLon) * k * scale) / 2;
  const offY = (HEIGHT - (maxLat - minLat) * scale) / 2;
  return {
    project: (lat, lon) => ({ x: offX + (lon - minLon) * k * scale, y: HEIGHT - offY - (lat - minLat) * scale }),
    unproject: ({ x, y }) => ({ lon: minLon + (x - offX) / (k * scale), lat: minLat + (HEIGHT - offY - y) / scale }),
    pxPerMeter: scale / METERS_PER_DEGREE,
    bounds: { minLat, maxLat, minLon, maxLon },
  };
}

const STATE_COLOR: Record<Tower['state'], string> = { online: '#1f9d55', offline: '#d8453b', unknown: '#8a94a6' };

function TowerPanel(props: { tower: Tower; onClose: () => void }) {
  const { api } = useConsole();
  const carriers = useAsync(
    () => api.get<{ carriers: Carrier[] }>(`/api/v1/towers/${encodeURIComponent(props.tower.id)}/carriers`).then((r) => r.carriers),
    [props.tower.id],
  );
  const t = props.tower;
  return (
    <Card
      title={t.name}
      testId="tower-detail"
      actions={
        <button type="button" class="link" onClick={props.onClose}>
          close
        </button>
      }
    >
      <dl class="facts">
        <dt>Id</dt>
        <dd class="mono">{t.id}</dd>
        <dt>State</dt>
        <dd>
          <Badge kind={t.state}>{t.state}</Badge>
        </dd>
        <dt>Agent</dt>
        <dd>{t.agent_version ?? '—'}</dd>
        <dt>Last seen</dt>
        <dd>{fmtAgo(t.last_seen)}</dd>
        <dt>Position</dt>
        <dd>{t.lat !== null && t.lon !== null ? `${t.lat.toFixed(4)}, ${t.lon.toFixed(4)}` : 'unknown'}</dd>
        <dt>Coverage</dt>
        <dd>{t.radius_m !== null ? `${fmtNum(t.radius_m)} m` : '—'}</dd>
        <dt>Carriers</dt>
        <dd>{(carriers.data ?? []).map((c) => c.name).join(', ') || '—'}</dd>
      </dl>
    </Card>
  );
}

export function TowersMap(_props: { route: Route }) {
  const { api } = useConsole();
  const towers = usePoll(() => api.get<{ towers: Tower[] }>('/api/v1/towers', { limit: 1000 }).then((r) => r.towers), TOWERS_POLL_MS, []);
  const [selected, setSelected] = useState<string | null>(null);
  const all = towers.data ?? [];
  const placed = all.filter((t): t is Tower & { lat: number; lon: number } => t.lat !== null && t.lon !== null);
  const unplaced = all.filter((t) => t.lat === null || t.lon === null);
  const projection = useMemo(() => (placed.length > 0 ? fitProjection(placed) : null), [towers.data]);
  const count = (s: Tower['state']) => all.filter((t) => t.state === s).length;
  const chosen = all.find((t) => t.id === selected) ?? null;

  const grid: JSX.Element[] = [];
  let hull = '';
  if (projection) {
    // Graticule over the whole drawing, with its own round step per axis (labels stay apart).
    const topLeft = projection.unproject({ x: 0, y: 0 });
    const bottomRight = projection.unproject({ x: WIDTH, y: HEIGHT });
    const latStep = niceStep(topLeft.lat - bottomRight.lat, 6);
    const lonStep = niceStep(bottomRight.lon - topLeft.lon, 8);
    const decimals = (step: number) => Math.max(0, -Math.floor(Math.log10(step)));
    // Lines only where the globe has coordinates: near a pole cos(latitude) is about 0, the drawing
    // spans up to 1e15 degrees of longitude, and a line every 90 of them would never finish.
    const lats = { from: Math.max(-90, bottomRight.lat), to: Math.min(90, topLeft.lat) };
    const lons = { from: Math.max(-180, topLeft.lon), to: Math.min(180, bottomRight.lon) };
    for (let lat = Math.ceil(lats.from / latStep) * latStep; lat <= lats.to; lat += latStep) {
      const { y } = projection.project(lat, topLeft.lon);
      grid.push(<line key={`lat${lat}`} x1={0} x2={WIDTH} y1={y} y2={y} class="graticule" />);
      grid.push(
        <text key={`latl${lat}`} x={4} y={y - 3} class="graticule-label">
          {lat.toFixed(decimals(latStep))}°
        </text>,
      );
    }
    for (let lon = Math.ceil(lons.from / lonStep) * lonStep; lon <= lons.to; lon += lonStep) {
      const { x } = projection.project(topLeft.lat, lon);
      grid.push(<line key={`lon${lon}`} x1={x} x2={x} y1={0} y2={HEIGHT} class="graticule" />);
      grid.push(
        <text key={`lonl${lon}`} x={x + 3} y={HEIGHT - 4} class="graticule-label">
          {lon.toFixed(decimals(lonStep))}°
        </text>,
      );
    }
    hull = convexHull(placed.map((t) => projection.project(t.lat, t.lon)))
      .map((p) => `${p.x.toFixed(1)},${p.y.toFixed(1)}`)
      .join(' ');
  }

  return (
    <div class="stack">
      <h1>Towers</h1>
      <ErrorBanner error={towers.error} />
      <div class="stats">
        <Stat label="towers" value={fmtNum(all.length)} />
        <Stat label="online" value={fmtNum(count('online'))} tone="ok" testId="towers-online" />
        <Stat label="offline" value={fmtNum(count('offline'))} tone={count('offline') > 0 ? 'deny' : 'ok'} testId="towers-offline" />
        <Stat label="never reported" value={fmtNum(count('unknown'))} />
      </div>
      <div class={chosen ? 'split' : ''}>
        <Card title="Map" testId="map">
          {projection ? (
            <svg viewBox={`0 0 ${WIDTH} ${HEIGHT}`} class="map" role="img" aria-label="towers by position and state">
              <rect x={0} y={0} width={WIDTH} height={HEIGHT} class="map-bg" />
              {grid}
              {hull !== '' && <polygon points={hull} class="footprint" />}
              {placed.map((t) => {
                const p = projection.project(t.lat, t.lon);
                const r = t.radius_m !== null ? Math.max(2, t.radius_m * projection.pxPerMeter) : 0;
                return (
                  <g key={t.id} class="tower" data-testid="map-tower" data-tower={t.id} data-state={t.state} onClick={() => setSelected(t.id)}>
                    {r > 0 && <circle cx={p.x} cy={p.y} r={r} fill={STATE_COLOR[t.state]} class="coverage" />}
                    <circle cx={p.x} cy={p.y} r={6} fill={STATE_COLOR[t.state]} class="tower-dot" />
                    {placed.length <= 40 && (
                      <text x={p.x + 9} y={p.y + 4} class="tower-label">
                        {t.name}
                      </text>
                    )}
                    <title>
                      {t.name} ({t.id}): {t.state}, last seen {fmtAgo(t.last_seen)}
                    </title>
                  </g>
                );
              })}
            </svg>
          ) : (
            <Empty>No tower has coordinates yet (PATCH /towers/{'{id}'} with lat and lon).</Empty>
          )}
          <p class="legend small">
            <span class="dot dot-online" /> online <span class="dot dot-offline" /> offline <span class="dot dot-unknown" /> never reported · shaded: coverage radius · dashed:
            fleet footprint
          </p>
          {unplaced.length > 0 && (
            <p class="muted small" data-testid="unplaced">
              Without coordinates: {unplaced.map((t) => `${t.name} (${t.state})`).join(', ')}
            </p>
          )}
        </Card>
        {chosen && <TowerPanel tower={chosen} onClose={() => setSelected(null)} />}
      </div>
    </div>
  );
}
