import { useState } from 'preact/hooks';
import { describeError } from '../lib/api.js';
import { pastedToken } from '../lib/pasted-token.js';
import type { Session } from '../lib/session.js';

export function LoginView(props: { problem: string | undefined; onLogin(session: Session): Promise<void> }) {
  const [token, setToken] = useState('');
  const [tenant, setTenant] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();

  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await props.onLogin({ token: pastedToken(token), ...(tenant.trim() ? { tenant: tenant.trim() } : {}) });
    } catch (err) {
      setError(describeError(err));
      setBusy(false);
    }
  };

  return (
    <main class="login" id="main">
      <h1>Vault console</h1>
      <p>
        Sign in with a Vault token (for <code>vault dev</code>, the <code>VAULT_TOKEN</code> it printed). The
        token stays in this tab only.
      </p>
      <form onSubmit={submit}>
        <label for="token">Token</label>
        <input
          id="token"
          name="token"
          type="password"
          autocomplete="off"
          spellcheck={false}
          required
          value={token}
          onInput={(e) => setToken(e.currentTarget.value)}
        />
        <label for="tenant">Tenant (optional)</label>
        <input
          id="tenant"
          name="tenant"
          autocomplete="off"
          spellcheck={false}
          value={tenant}
          onInput={(e) => setTenant(e.currentTarget.value)}
        />
        <button type="submit" disabled={busy || !pastedToken(token)}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
        {(error ?? props.problem) && (
          <p role="alert" class="error">
            {error ?? props.problem}
          </p>
        )}
      </form>
    </main>
  );
}
