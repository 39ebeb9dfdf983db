/** Sign-in: e-mail and password (and, for an e-mail used in several tenants, the tenant id). */
import { useState } from 'preact/hooks';
import { describeError } from '../lib/errors';
import { Session } from '../lib/session';

export function Login(props: { message: string | null; onSignedIn: (session: Session) => void }) {
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [tenantId, setTenantId] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const session = await Session.login(email.trim(), password, tenantId.trim() || undefined);
      setPassword('');
      props.onSignedIn(session);
    } catch (err) {
      setError(describeError(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <div class="login">
      <form class="card login-card" onSubmit={(e) => void submit(e)} data-testid="login-form">
        <h1>
          <span class="brand-mark" aria-hidden="true">◆</span> EdgePlane
        </h1>
        <p class="muted">Sign in to your enterprise or operator console.</p>
        {props.message !== null && <p class="banner">{props.message}</p>}
        <label class="field">
          <span class="field-label">E-mail</span>
          <input name="email" type="email" autocomplete="username" required value={email} onInput={(e) => setEmail(e.currentTarget.value)} />
        </label>
        <label class="field">
          <span class="field-label">Password</span>
          <input
            name="password"
            type="password"
            autocomplete="current-password"
            required
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
          />
        </label>
        <details>
          <summary>My e-mail is used in several enterprises</summary>
          <label class="field">
            <span class="field-label">Tenant id</span>
            <input name="tenant_id" value={tenantId} onInput={(e) => setTenantId(e.currentTarget.value)} />
          </label>
        </details>
        {error !== null && (
          <p class="banner banner-error" role="alert" data-testid="login-error">
            {error}
          </p>
        )}
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
        <p class="muted small">
          API reference: <a href="/docs">/docs</a>
        </p>
      </form>
    </div>
  );
}
