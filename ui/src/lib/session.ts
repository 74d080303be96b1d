/**
 * The user's token lives in memory and in this tab's sessionStorage (so a reload keeps the
 * session), never in a cookie, localStorage or a URL. Closing the tab forgets it.
 */
export interface Session {
  token: string;
  /** Sent as X-Vault-Tenant when given. */
  tenant?: string;
}

const key = 'vault.console.session';

export function loadSession(): Session | undefined {
  try {
    const raw = sessionStorage.getItem(key);
    if (!raw) return undefined;
    const parsed = JSON.parse(raw) as Partial<Session>;
    return typeof parsed.token === 'string' && parsed.token
      ? { token: parsed.token, ...(parsed.tenant ? { tenant: parsed.tenant } : {}) }
      : undefined;
  } catch {
    return undefined;
  }
}

export function saveSession(session: Session): void {
  sessionStorage.setItem(key, JSON.stringify(session));
}

export function clearSession(): void {
  sessionStorage.removeItem(key);
}
