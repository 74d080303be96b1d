/**
 * The broker's contract with credentials and with the API, in one place: the metadata keys a
 * credential carries to be brokered and how its host list reads. Pure: the server checks the
 * same host list the broker enforces (on `POST /v1/leases/:id/use` with a host, see
 * `useLeaseRequest` in leases.ts), so a broker bug cannot widen where a value goes.
 */

export const brokerMetadata = {
  /** Comma-separated `host` or `host:port` (port 443 when omitted) the value may be sent to. */
  hosts: 'hosts',
  /** `true`: the placeholder is also replaced in request bodies (JSON, form posts). */
  body: 'broker.body',
} as const;

export interface HostPort {
  host: string;
  port: number;
}

const hostPattern = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/;

/** `"api.stripe.com, uploads.stripe.com:8443"` → host/port pairs; malformed entries are errors. */
export function parseHosts(text: string | undefined): { hosts: HostPort[] } | { error: string } {
  const hosts: HostPort[] = [];
  for (const entry of (text ?? '').split(',').map((s) => s.trim().toLowerCase())) {
    if (entry === '') continue;
    const parsed = parseHostPort(entry, 443);
    if (!parsed) return { error: `"${entry}" in metadata.hosts is not a host name or host:port` };
    hosts.push(parsed);
  }
  return { hosts };
}

/** `host[:port]` with `fallbackPort` when none is given; undefined when malformed. */
export function parseHostPort(text: string, fallbackPort: number): HostPort | undefined {
  const match = /^([^:]+)(?::(\d{1,5}))?$/.exec(text.trim().toLowerCase());
  if (!match || !hostPattern.test(match[1]!)) return undefined;
  const port = match[2] === undefined ? fallbackPort : Number(match[2]);
  if (port < 1 || port > 65_535) return undefined;
  return { host: match[1]!, port };
}

export const hostAllowed = (hosts: readonly HostPort[], target: HostPort) =>
  hosts.some((h) => h.host === target.host.toLowerCase() && h.port === target.port);

export const brokersBody = (metadata: Record<string, string>) => metadata[brokerMetadata.body] === 'true';
