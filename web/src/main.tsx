/**
 * The console's entry: restores this tab's session (or shows the sign-in; during an outage, offers
 * to try again with the session kept), learns what the user may do (/me/permissions), opens the
 * live feeds for tenant users, and renders the shell.
 */
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import './styles.css';
import { Api } from './lib/api';
import type { ConsoleContext } from './lib/context';
import { Directory } from './lib/directory';
import { ApiError, describeError } from './lib/errors';
import { Features } from './lib/features';
import { LiveHub } from './lib/live';
import { Session } from './lib/session';
import type { CallerPermissions, Tenant } from './lib/types';
import { Login } from './views/login';
import { Shell } from './views/shell';

async function open(session: Session): Promise<ConsoleContext> {
  const api = new Api(session);
  const perms = await api.get<CallerPermissions>('/api/v1/me/permissions');
  const held = new Set(perms.permissions);
  const can = (p: string) => held.has(p);
  let tenantName: string | null = null;
  if (perms.tenant_id !== null && can('tenant:read')) tenantName = (await api.get<{ tenant: Tenant }>('/api/v1/tenant')).tenant.name;
  const live = perms.tenant_id !== null && can('feeds:read') ? new LiveHub(api, session) : null;
  const names = new Directory(api, can);
  return { api, session, perms, can, live, names, features: new Features(), tenantName };
}

type State =
  | { kind: 'boot' }
  | { kind: 'signed-out'; message: string | null }
  | { kind: 'unavailable'; message: string; retry: () => void }
  | { kind: 'console'; ctx: ConsoleContext };

/**
 * An outage rather than a verdict on the session: no answer, 429 or 5xx. The session is kept
 * (a reload or "Try again" resumes it) instead of being thrown away with its refresh token.
 */
function transient(err: unknown): boolean {
  return err instanceof TypeError || (err instanceof ApiError && (err.status === 429 || err.status >= 500));
}

function Unavailable(props: { message: string; retry: () => void }) {
  return (
    <div class="login">
      <div class="card login-card" data-testid="unavailable">
        <p class="banner banner-error" role="alert">
          {props.message}
        </p>
        <button type="button" class="primary" onClick={props.retry}>
          Try again
        </button>
      </div>
    </div>
  );
}

function Root() {
  const [state, setState] = useState<State>({ kind: 'boot' });

  const enter = async (session: Session) => {
    try {
      const ctx = await open(session);
      session.onEnded((reason) => {
        ctx.live?.stop();
        setState({ kind: 'signed-out', message: reason });
      });
      ctx.live?.start();
      void ctx.names.load();
      setState({ kind: 'console', ctx });
    } catch (err) {
      if (!session.ended && transient(err)) {
        setState({ kind: 'unavailable', message: describeError(err), retry: () => void retry(() => enter(session)) });
        return;
      }
      session.end(describeError(err));
      setState({ kind: 'signed-out', message: describeError(err) });
    }
  };

  const restore = async () => {
    try {
      const s = await Session.restore();
      if (s) await enter(s);
      else setState({ kind: 'signed-out', message: null });
    } catch (err) {
      setState({ kind: 'unavailable', message: describeError(err), retry: () => void retry(restore) });
    }
  };

  const retry = async (step: () => Promise<void>) => {
    setState({ kind: 'boot' });
    await step();
  };

  useEffect(() => {
    void restore();
  }, []);

  if (state.kind === 'boot') return <p class="boot">Loading the EdgePlane console…</p>;
  if (state.kind === 'unavailable') return <Unavailable message={state.message} retry={state.retry} />;
  if (state.kind === 'signed-out') return <Login message={state.message} onSignedIn={(s) => void enter(s)} />;
  return <Shell ctx={state.ctx} />;
}

const mount = document.getElementById('app');
if (mount) {
  mount.textContent = '';
  render(<Root />, mount);
}
