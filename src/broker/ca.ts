/**
 * The broker's own CA: created when the broker starts, used to sign one leaf certificate per
 * brokered host, then forgotten. Every host is known up front (the credentials name them), so
 * the CA key is gone from memory, and its signing temp files from disk, before the agent's
 * command starts; a process that could later steal it would find nothing to steal.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSecureContext, rootCertificates, type SecureContext } from 'node:tls';
import type { HostPort } from '../contract/broker.js';
import { issueCa, issueServing } from '../webhook/certs.js';

export interface BrokerPki {
  caCertPem: string;
  /** The TLS context to present for a host name (the port does not matter to a certificate). */
  contextFor(host: string): SecureContext | undefined;
}

const validityDays = 1;

export async function createBrokerPki(hosts: readonly HostPort[], now: Date): Promise<BrokerPki> {
  let ca: { certPem: string; keyPem: string } | undefined = await issueCa(validityDays, now);
  const contexts = new Map<string, SecureContext>();
  try {
    for (const host of new Set(hosts.map((h) => h.host))) {
      const ip = isIP(host) !== 0;
      const leaf = await issueServing(
        ca,
        { dnsNames: ip ? [] : [host], ipAddresses: ip ? [host] : [], servingValidityDays: validityDays },
        now,
      );
      contexts.set(host, createSecureContext({ cert: leaf.certPem, key: leaf.keyPem }));
    }
    return { caCertPem: ca.certPem, contextFor: (host) => contexts.get(host.toLowerCase()) };
  } finally {
    ca = undefined;
  }
}

/** Files the agent's command trusts: the broker CA alone, and the system roots plus it. */
export interface TrustFiles {
  dir: string;
  /** The broker CA only (for `NODE_EXTRA_CA_CERTS`, which adds to Node's own roots). */
  caFile: string;
  /** Public roots and the broker CA (for tools whose variable replaces their roots). */
  bundleFile: string;
  remove(): Promise<void>;
}

export async function writeTrustFiles(caCertPem: string): Promise<TrustFiles> {
  const dir = await mkdtemp(join(tmpdir(), 'vault-broker-'));
  const caFile = join(dir, 'broker-ca.pem');
  const bundleFile = join(dir, 'ca-bundle.pem');
  await writeFile(caFile, caCertPem, { mode: 0o644 });
  await writeFile(bundleFile, `${[...rootCertificates, caCertPem.trim()].join('\n')}\n`, { mode: 0o644 });
  return { dir, caFile, bundleFile, remove: () => rm(dir, { recursive: true, force: true }) };
}
