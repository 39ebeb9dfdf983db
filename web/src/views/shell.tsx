/**
 * The signed-in frame: who is signed in (tenant, console role), the live feeds' state, the
 * navigation — only the sections the user's permissions open — and the routed view.
 */
import type { ComponentType } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { Ctx, type ConsoleContext } from '../lib/context';
import type { FeedStatus } from '../lib/feed';
import { href, useRoute, type Route } from '../lib/router';
import { Carriers } from './operator/carriers';
import { Health } from './operator/health';
import { TenantsUsage } from './operator/tenants';
import { TowersMap } from './operator/towers-map';
import { Alerts } from './tenant/alerts';
import { Audit } from './tenant/audit';
import { Decisions } from './tenant/decisions';
import { Devices } from './tenant/devices';
import { People } from './tenant/people';
import { Overview } from './tenant/overview';
import { PolicyEditor } from './tenant/policy-editor';
import { Remediations } from './tenant/remediations';

interface Section {
  path: string;
  label: string;
  /** Shown only to users holding this permission. */
  permission: string;
  view: ComponentType<{ route: Route }>;
}

const TENANT_SECTIONS: Section[] = [
  { path: '/', label: 'Overview', permission: 'dashboard:read', view: Overview },
  { path: '/decisions', label: 'Live decisions', permission: 'usage:read', view: Decisions },
  { path: '/alerts', label: 'Alerts', permission: 'alerts:read', view: Alerts },
  { path: '/remediations', label: 'Remediations', permission: 'remediation:read', view: Remediations },
  { path: '/devices', label: 'Devices', permission: 'devices:read', view: Devices },
  { path: '/people', label: 'Users & roles', permission: 'users:read', view: People },
  { path: '/policies', label: 'Policies', permission: 'policies:read', view: PolicyEditor },
  { path: '/audit', label: 'Audit log', permission: 'audit:read', view: Audit },
];

const OPERATOR_SECTIONS: Section[] = [
  { path: '/', label: 'Towers map', permission: 'towers:read', view: TowersMap },
  { path: '/carriers', label: 'Carriers', permission: 'carriers:read', view: Carriers },
  { path: '/tenants', label: 'Tenants & plans', permission: 'tenants:read', view: TenantsUsage },
  { path: '/health', label: 'System health', permission: 'metrics:read', view: Health },
  { path: '/audit', label: 'Audit log', permission: 'audit:read', view: Audit },
];

function describeStatus(s: FeedStatus): { label: string; kind: string } {
  switch (s.state) {
    case 'live':
      return { label: 'live', kind: 'ok' };
    case 'connecting':
      return { label: s.attempt > 1 ? `reconnecting (attempt ${s.attempt})` : 'connecting', kind: 'warn' };
    case 'waiting':
      return { label: `reconnecting in ${Math.max(0, Math.ceil((s.retryAt - Date.now()) / 1000))} s`, kind: 'warn' };
    case 'stopped':
      return { label: `off: ${s.reason}`, kind: 'off' };
  }
}

function LiveIndicator(props: { ctx: ConsoleContext }) {
  const live = props.ctx.live;
  const [, setTick] = useState(0);
  useEffect(() => {
    if (!live) return;
    const off = live.onStatus(() => setTick((t) => t + 1));
    // The countdown of a waiting feed moves every second.
    const timer = setInterval(() => setTick((t) => t + 1), 1000);
    return () => {
      off();
      clearInterval(timer);
    };
  }, [live]);
  if (!live) return null;
  const { stream, alerts } = live.statuses();
  const worst = [stream, alerts].find((s) => s.state !== 'live') ?? stream;
  const d = describeStatus(worst);
  return (
    <button
      type="button"
      class={`pill pill-${d.kind}`}
      data-testid="feed-status"
      data-state={worst.state}
      title="Live feeds (decisions, alerts and remediations). Click to reconnect now."
      onClick={() => {
        live.stream.reconnectNow();
        live.alerts.reconnectNow();
      }}
    >
      ● {d.label}
    </button>
  );
}

export function Shell(props: { ctx: ConsoleContext }) {
  const { ctx } = props;
  const route = useRoute();
  const operator = ctx.perms.role === 'operator';
  const sections = (operator ? OPERATOR_SECTIONS : TENANT_SECTIONS).filter((s) => ctx.can(s.permission));
  const active = sections.find((s) => s.path === route.path) ?? sections[0];
  const View = active?.view;

  return (
    <Ctx.Provider value={ctx}>
      <div class="shell">
        <header class="topbar">
          <a class="brand" href="#/">
            <span class="brand-mark" aria-hidden="true">◆</span> EdgePlane
          </a>
          <span class="scope" data-testid="scope">
            {operator ? 'Platform operations' : (ctx.tenantName ?? 'Enterprise console')}
          </span>
          <span class="badge badge-role" data-testid="role">
            {ctx.perms.role}
          </span>
          <span class="spacer" />
          <LiveIndicator ctx={ctx} />
          <button type="button" class="link" data-testid="logout" onClick={() => void ctx.session.logout()}>
            Sign out
          </button>
        </header>
        <nav class="sidebar" aria-label="sections">
          {sections.map((s) => (
            <a key={s.path} href={href(s.path)} class={s === active ? 'active' : ''} data-testid={`nav-${s.path === '/' ? 'home' : s.path.slice(1)}`}>
              {s.label}
            </a>
          ))}
        </nav>
        <main class="content">{View ? <View route={route} /> : <p class="empty">This account has no console sections.</p>}</main>
      </div>
    </Ctx.Provider>
  );
}
