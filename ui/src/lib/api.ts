import type { Session } from './session.js';
import type {
  AuditCheckpoint,
  AuditRecord,
  AuditVerifyResult,
  Credential,
  Identity,
  IdentityRecord,
  Lease,
  Policy,
  PolicyBody,
  TokenInfo,
} from './types.js';

/** An error answer of the API: `{ error: { code, message, requestId } }`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

type Query = Record<string, string | number | undefined>;

function queryString(query: Query | undefined): string {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query ?? {})) {
    if (value !== undefined && value !== '') params.set(name, String(value));
  }
  const text = params.toString();
  return text ? `?${text}` : '';
}

/** The public HTTP API, with the user's token in the Authorization header (same origin). */
export function createApi(session: Session) {
  const headers = (): Record<string, string> => ({
    authorization: `Bearer ${session.token}`,
    ...(session.tenant ? { 'x-vault-tenant': session.tenant } : {}),
  });

  async function call<T>(method: string, path: string, options: { query?: Query; body?: unknown } = {}) {
    const response = await fetch(`/v1${path}${queryString(options.query)}`, {
      method,
      headers: {
        ...headers(),
        ...(options.body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
      cache: 'no-store',
      credentials: 'omit',
    });
    const text = await response.text();
    const json: unknown = text ? JSON.parse(text) : undefined;
    if (!response.ok) {
      const error = (json as { error?: { code?: string; message?: string } } | undefined)?.error;
      throw new ApiError(
        response.status,
        error?.code ?? 'http_error',
        error?.message ?? `the server answered ${response.status}`,
      );
    }
    return json as T;
  }

  const segment = encodeURIComponent;
  return {
    headers,
    whoami: () => call<TokenInfo>('GET', '/auth/whoami'),
    lookupToken: (accessor: string) => call<TokenInfo>('GET', `/auth/tokens/${segment(accessor)}`),
    revokeToken: (accessor: string) => call<{ ok: true }>('DELETE', `/auth/tokens/${segment(accessor)}`),

    listLeases: (query: Query) => call<{ leases: Lease[]; continue?: string }>('GET', '/leases', { query }),
    revokeLease: (id: string) => call<Lease>('POST', `/leases/${segment(id)}/revoke`),
    revealLease: (id: string) => call<Lease>('POST', `/leases/${segment(id)}/reveal`),
    bulkRevoke: (body: { identity: Identity } | { credentialName: string }) =>
      call<{ revoked: number; leaseIds: string[]; truncated: boolean }>('POST', '/leases/revoke', { body }),

    /** Every credential the caller may list, following the server's pages. */
    listCredentials: async () => {
      const credentials: Credential[] = [];
      let next: string | undefined;
      do {
        const page = await call<{ credentials: Credential[]; continue?: string }>('GET', '/credentials', {
          query: next ? { continue: next } : {},
        });
        credentials.push(...page.credentials);
        next = page.continue;
      } while (next);
      return { credentials };
    },
    rotateCredential: (name: string) =>
      call<Credential>('POST', `/credentials/${segment(name)}/rotate`, { body: {} }),

    queryAudit: (query: Query) => call<{ records: AuditRecord[] }>('GET', '/audit', { query }),
    /** With `since`, the log must also still extend that earlier checkpoint. */
    verifyAudit: (since?: AuditCheckpoint) =>
      since
        ? call<AuditVerifyResult>('POST', '/audit/verify', { body: { since } })
        : call<AuditVerifyResult>('GET', '/audit/verify'),

    listIdentities: () => call<{ identities: IdentityRecord[] }>('GET', '/identities'),
    putIdentity: (record: IdentityRecord, policies: string[]) =>
      call<IdentityRecord>('PUT', `/identities/${segment(record.type)}/${segment(record.name)}`, {
        body: { policies, ...(record.metadata ? { metadata: record.metadata } : {}) },
      }),
    listPolicies: () => call<{ policies: Policy[] }>('GET', '/policies'),
    putPolicy: (name: string, body: PolicyBody) =>
      call<Policy>('PUT', `/policies/${segment(name)}`, { body }),
  };
}

export type Api = ReturnType<typeof createApi>;

/** Every active lease, following `continue` pages (up to `max`). */
export async function allActiveLeases(api: Api, max = 5000): Promise<Lease[]> {
  const leases: Lease[] = [];
  let next: string | undefined;
  do {
    const page = await api.listLeases({ state: 'active', limit: 1000, continue: next });
    leases.push(...page.leases);
    next = page.continue;
  } while (next && leases.length < max);
  return leases;
}

export function describeError(err: unknown): string {
  if (err instanceof ApiError) return `${err.message} (${err.code})`;
  return err instanceof Error ? err.message : String(err);
}
