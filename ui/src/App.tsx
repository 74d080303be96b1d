import { useEffect, useMemo, useState } from 'preact/hooks';
import { type Api, createApi, describeError } from './lib/api.js';
import { clearSession, loadSession, type Session, saveSession } from './lib/session.js';
import type { TokenInfo } from './lib/types.js';
import { AccessView } from './views/Access.js';
import { AuditView } from './views/Audit.js';
import { CredentialsView } from './views/Credentials.js';
import { KubernetesView } from './views/Kubernetes.js';
import { LeasesView } from './views/Leases.js';
import { LoginView } from './views/Login.js';

const views = [
  { path: 'leases', title: 'Leases' },
  { path: 'credentials', title: 'Credentials' },
  { path: 'audit', title: 'Audit' },
  { path: 'access', title: 'Identities & policies' },
  { path: 'kubernetes', title: 'Kubernetes' },
] as const;
type ViewPath = (typeof views)[number]['path'];

/** Hash routes (#/leases): the server serves one page, and nothing secret ever goes in a URL. */
function currentView(): ViewPath {
  const path = location.hash.replace(/^#\/?/, '');
  return views.find((view) => view.path === path)?.path ?? 'leases';
}

/**
 * The tenant every call addresses: the one typed at sign-in (X-Vault-Tenant) when given, which
 * a system token may point away from its own (whoami names the token's home tenant).
 */
function tenantLabel(me: TokenInfo, session: Session): string {
  const addressed = session.tenant ?? me.tenant;
  return addressed === me.tenant
    ? `tenant ${addressed}`
    : `tenant ${addressed} (token of tenant ${me.tenant})`;
}

export function App() {
  const [session, setSession] = useState<Session | undefined>(loadSession);
  const [me, setMe] = useState<TokenInfo>();
  const [problem, setProblem] = useState<string>();
  const [view, setView] = useState<ViewPath>(currentView);
  const api = useMemo<Api | undefined>(() => (session ? createApi(session) : undefined), [session]);

  useEffect(() => {
    const onHash = () => setView(currentView());
    addEventListener('hashchange', onHash);
    return () => removeEventListener('hashchange', onHash);
  }, []);

  useEffect(() => {
    if (!api) return;
    let live = true;
    api.whoami().then(
      (info) => live && setMe(info),
      (err: unknown) => {
        if (!live) return;
        clearSession();
        setSession(undefined);
        setProblem(`Signed out: ${describeError(err)}`);
      },
    );
    return () => {
      live = false;
    };
  }, [api]);

  useEffect(() => {
    const title = views.find((v) => v.path === view)?.title ?? '';
    document.title = session ? `${title} · Vault console` : 'Sign in · Vault console';
  }, [view, session]);

  if (!session || !api) {
    return (
      <LoginView
        problem={problem}
        onLogin={async (next) => {
          const info = await createApi(next).whoami();
          saveSession(next);
          setProblem(undefined);
          setMe(info);
          setSession(next);
        }}
      />
    );
  }

  const logout = () => {
    // Signing out forgets the token in this tab; it does not revoke it.
    clearSession();
    setMe(undefined);
    setSession(undefined);
  };

  return (
    <div class="shell">
      <button type="button" class="skip" onClick={() => document.getElementById('main')?.focus()}>
        Skip to content
      </button>
      <header class="top">
        <span class="brand">Vault console</span>
        <nav aria-label="Views">
          <ul>
            {views.map((v) => (
              <li key={v.path}>
                <a href={`#/${v.path}`} aria-current={v.path === view ? 'page' : undefined}>
                  {v.title}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <span class="whoami" data-testid="whoami">
          {me ? `${me.identity.type}/${me.identity.name} · ${tenantLabel(me, session)}` : '…'}
        </span>
        <button type="button" class="secondary" onClick={logout}>
          Sign out
        </button>
      </header>
      <main id="main" tabIndex={-1}>
        {view === 'leases' && <LeasesView api={api} />}
        {view === 'credentials' && <CredentialsView api={api} />}
        {view === 'audit' && <AuditView api={api} />}
        {view === 'access' && <AccessView api={api} me={me} />}
        {view === 'kubernetes' && <KubernetesView api={api} />}
      </main>
    </div>
  );
}
