/**
 * The broker's decisions, as pure functions of the request and the table of brokered
 * credentials: which CONNECTs are opened (and whether the broker reads inside them), and
 * whether a request is forwarded with values swapped in or refused. The proxy only does I/O.
 */
import { type HostPort, hostAllowed } from '../contract/broker.js';

export interface Brokered {
  credential: string;
  leaseId: string;
  /** The environment variable the agent's command finds the placeholder in. */
  env: string;
  placeholder: string;
  hosts: HostPort[];
  /** Swap the placeholder in request bodies too (`metadata["broker.body"] = "true"`). */
  body: boolean;
}

export type ConnectVerdict = { kind: 'intercept' } | { kind: 'tunnel' } | { kind: 'refuse'; reason: string };

/** CONNECT to a host some credential names: terminate TLS and read it; others by policy. */
export function decideConnect(
  target: HostPort,
  credentials: readonly Brokered[],
  allowOtherHosts: boolean,
): ConnectVerdict {
  if (credentials.some((c) => hostAllowed(c.hosts, target))) return { kind: 'intercept' };
  if (allowOtherHosts) return { kind: 'tunnel' };
  return {
    kind: 'refuse',
    reason: `${target.host}:${target.port} is not a host of any brokered credential, and this broker does not tunnel other hosts`,
  };
}

export type RequestVerdict =
  | { kind: 'forward'; swap: Brokered[] }
  | { kind: 'refuse'; status: number; code: string; reason: string; denied: Brokered[] };

/**
 * A request that carries placeholders (`seen`) to `target`. Every placeholder must belong to
 * a credential that names the target, and the request must be inside TLS the broker
 * terminated; otherwise nothing is swapped and the whole request is refused (a value is
 * never sent to the wrong host, and the attempt is audited against each lease).
 * `interceptable`: the target is one the broker reads (a request without placeholders to a
 * host nobody names goes through only when other hosts are allowed).
 */
export function decideRequest(input: {
  target: HostPort;
  tls: boolean;
  seen: readonly Brokered[];
  credentials: readonly Brokered[];
  allowOtherHosts: boolean;
}): RequestVerdict {
  const { target, seen } = input;
  const where = `${target.host}:${target.port}`;
  const misplaced = seen.filter((c) => !input.tls || !hostAllowed(c.hosts, target));
  if (misplaced.length > 0) {
    const names = misplaced.map((c) => `"${c.credential}"`).join(', ');
    return {
      kind: 'refuse',
      status: 403,
      code: 'host_not_allowed',
      reason: input.tls
        ? `the placeholder of ${names} was sent to ${where}, which the credential does not name in metadata.hosts; nothing was sent`
        : `the placeholder of ${names} was sent over plain HTTP to ${where}; values are only sent over HTTPS to the hosts a credential names`,
      denied: misplaced,
    };
  }
  const named = input.credentials.some((c) => hostAllowed(c.hosts, target));
  if (!named && !input.allowOtherHosts) {
    return {
      kind: 'refuse',
      status: 403,
      code: 'host_not_allowed',
      reason: `${where} is not a host of any brokered credential, and this broker does not forward to other hosts`,
      denied: [],
    };
  }
  return { kind: 'forward', swap: [...seen] };
}
