import { execFile } from 'node:child_process';
import { generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Clock } from '../lib/clock.js';

/**
 * The webhook's own small PKI: a CA and a serving certificate signed by it. Node can parse
 * certificates (X509Certificate) but not create them, so signing uses the `openssl` CLI
 * (keys come from node:crypto). Rotation decisions are a pure function of the state and the
 * injected clock (`planRotation`), so "what happens near expiry" is testable without waiting.
 *
 * Rotation with overlap: a new CA is first *staged*, added to the caBundle next to the
 * current one, and only after `overlapMs` (time for every API server to see the new bundle)
 * is it promoted and a serving certificate signed by it put in use. The old CA stays in the
 * bundle until it expires.
 */

export interface KeyPairPem {
  certPem: string;
  keyPem: string;
}

export interface CertState {
  ca: KeyPairPem;
  serving: KeyPairPem;
  /** A CA staged for promotion, already in the bundle. */
  next?: KeyPairPem & { stagedAt: string };
  /** CAs that signed earlier serving certificates, trusted until they expire. */
  previous: string[];
}

export interface RotationPolicy {
  dnsNames: string[];
  ipAddresses: string[];
  caValidityDays: number;
  servingValidityDays: number;
  /** Stage a new CA when the current one has less than this left. */
  caRenewBeforeMs: number;
  /** Reissue the serving certificate when it has less than this left. */
  servingRenewBeforeMs: number;
  /** How long a staged CA sits in the bundle before it signs the serving certificate. */
  overlapMs: number;
}

const day = 86_400_000;

export function defaultRotationPolicy(hosts: {
  dnsNames?: string[];
  ipAddresses?: string[];
}): RotationPolicy {
  return {
    dnsNames: hosts.dnsNames ?? [],
    ipAddresses: hosts.ipAddresses ?? [],
    caValidityDays: 365,
    servingValidityDays: 90,
    caRenewBeforeMs: 60 * day,
    servingRenewBeforeMs: 30 * day,
    overlapMs: 10 * 60_000,
  };
}

export type RotationAction = 'create' | 'stage-ca' | 'promote-ca' | 'reissue-serving' | 'prune' | 'none';

export function planRotation(
  state: CertState | undefined,
  now: Date,
  policy: RotationPolicy,
): RotationAction {
  if (!state) return 'create';
  const ca = new X509Certificate(state.ca.certPem);
  const serving = new X509Certificate(state.serving.certPem);
  const t = now.getTime();
  if (state.next && t - Date.parse(state.next.stagedAt) >= policy.overlapMs) return 'promote-ca';
  if (Date.parse(ca.validTo) - t < policy.caRenewBeforeMs) {
    // A CA that has already expired cannot wait for an overlap: nothing trusts it anyway.
    if (Date.parse(ca.validTo) <= t) return 'create';
    if (!state.next) return 'stage-ca';
  }
  const expired = Date.parse(serving.validTo) - t < policy.servingRenewBeforeMs;
  if (expired || !serving.checkIssued(ca) || !coversHosts(serving, policy)) return 'reissue-serving';
  if (state.previous.some((pem) => Date.parse(new X509Certificate(pem).validTo) <= t)) return 'prune';
  return 'none';
}

/** The PEM bundle the API server should trust: current, staged and still-valid older CAs. */
export function caBundle(state: CertState, now: Date): string {
  const pems = [state.ca.certPem, ...(state.next ? [state.next.certPem] : []), ...state.previous];
  return pems
    .filter((pem) => Date.parse(new X509Certificate(pem).validTo) > now.getTime())
    .map((pem) => pem.trim())
    .join('\n')
    .concat('\n');
}

/** Applies one planned action; returns the new state (or the same one for 'none'). */
export async function applyRotation(
  state: CertState | undefined,
  action: RotationAction,
  policy: RotationPolicy,
  now: Date,
): Promise<CertState> {
  switch (action) {
    case 'none':
      return state!;
    case 'create': {
      const ca = await issueCa(policy.caValidityDays, now);
      const keep = state ? [state.ca.certPem, ...state.previous] : [];
      return { ca, serving: await issueServing(ca, policy, now), previous: stillValid(keep, now) };
    }
    case 'stage-ca':
      return {
        ...state!,
        next: { ...(await issueCa(policy.caValidityDays, now)), stagedAt: now.toISOString() },
      };
    case 'promote-ca': {
      const next = state!.next!;
      const ca = { certPem: next.certPem, keyPem: next.keyPem };
      return {
        ca,
        serving: await issueServing(ca, policy, now),
        previous: stillValid([state!.ca.certPem, ...state!.previous], now),
      };
    }
    case 'reissue-serving':
      return { ...state!, serving: await issueServing(state!.ca, policy, now) };
    case 'prune':
      return { ...state!, previous: stillValid(state!.previous, now) };
  }
}

const stillValid = (pems: string[], now: Date) =>
  pems.filter((pem) => Date.parse(new X509Certificate(pem).validTo) > now.getTime());

function coversHosts(cert: X509Certificate, policy: RotationPolicy): boolean {
  const sans = (cert.subjectAltName ?? '').split(',').map((s) => s.trim());
  return (
    policy.dnsNames.every((name) => sans.includes(`DNS:${name}`)) &&
    policy.ipAddresses.every((ip) => sans.includes(`IP Address:${ip}`))
  );
}

// ---------------------------------------------------------------------------------------
// Issuing with openssl.

/** A self-signed CA valid from `now` (the injected clock) for `validityDays`. */
export async function issueCa(validityDays: number, now: Date = new Date()): Promise<KeyPairPem> {
  const keyPem = newKeyPem();
  const certPem = await sign({
    keyPem,
    subject: `/CN=vault-injector-ca-${randomBytes(4).toString('hex')}`,
    extensions: [
      'basicConstraints = critical,CA:TRUE',
      'keyUsage = critical,keyCertSign,cRLSign,digitalSignature',
      'subjectKeyIdentifier = hash',
    ],
    now,
    validityDays,
  });
  return { certPem, keyPem };
}

/** A serving certificate for the hosts, signed by `ca`, valid from `now`. */
export async function issueServing(
  ca: KeyPairPem,
  request: { dnsNames: string[]; ipAddresses: string[]; servingValidityDays: number },
  now: Date = new Date(),
): Promise<KeyPairPem> {
  const sans = [...request.dnsNames.map((n) => `DNS:${n}`), ...request.ipAddresses.map((ip) => `IP:${ip}`)];
  if (sans.length === 0)
    throw new RangeError('a serving certificate needs at least one DNS name or IP address');
  const keyPem = newKeyPem();
  const certPem = await sign({
    keyPem,
    subject: `/CN=${request.dnsNames[0] ?? request.ipAddresses[0]}`,
    extensions: [
      'basicConstraints = critical,CA:FALSE',
      'keyUsage = critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage = serverAuth',
      'authorityKeyIdentifier = keyid',
      `subjectAltName = ${sans.join(',')}`,
    ],
    now,
    validityDays: request.servingValidityDays,
    ca,
  });
  return { certPem, keyPem };
}

/**
 * `openssl ca` because it is the one signing command that takes explicit start and end
 * dates (`x509 -days` counts from the real time, which would defeat the injected clock).
 * It needs a throw-away database directory.
 */
async function sign(request: {
  keyPem: string;
  subject: string;
  extensions: string[];
  now: Date;
  validityDays: number;
  ca?: KeyPairPem;
}): Promise<string> {
  return withTempDir(async (dir) => {
    const file = (name: string) => join(dir, name);
    await writeFile(file('req.key'), request.keyPem, { mode: 0o600 });
    await writeFile(file('index.txt'), '');
    await writeFile(file('serial'), `${randomBytes(8).toString('hex').replace(/^0/, '1')}\n`);
    await writeFile(
      file('ca.cnf'),
      [
        '[ca]',
        'default_ca = local',
        '[local]',
        `dir = ${dir}`,
        'database = $dir/index.txt',
        'new_certs_dir = $dir',
        'serial = $dir/serial',
        'default_md = sha256',
        'policy = any',
        'unique_subject = no',
        'copy_extensions = none',
        '[any]',
        'commonName = supplied',
        '[ext]',
        ...request.extensions,
        '',
      ].join('\n'),
    );
    const csr = await openssl(['req', '-new', '-key', file('req.key'), '-subj', request.subject], '');
    await writeFile(file('req.csr'), csr);
    let signer = ['-selfsign', '-keyfile', file('req.key')];
    if (request.ca) {
      await writeFile(file('ca.key'), request.ca.keyPem, { mode: 0o600 });
      await writeFile(file('ca.crt'), request.ca.certPem);
      signer = ['-cert', file('ca.crt'), '-keyfile', file('ca.key')];
    }
    const start = new Date(request.now.getTime() - 5 * 60_000); // tolerate clock skew
    const end = new Date(request.now.getTime() + request.validityDays * day);
    await openssl(
      [
        'ca',
        '-batch',
        '-notext',
        '-config',
        file('ca.cnf'),
        ...signer,
        '-in',
        file('req.csr'),
        '-out',
        file('out.crt'),
        '-startdate',
        opensslDate(start),
        '-enddate',
        opensslDate(end),
        '-extensions',
        'ext',
      ],
      '',
    );
    return readFile(file('out.crt'), 'utf8');
  });
}

/** YYYYMMDDHHMMSSZ (GeneralizedTime), which openssl accepts for any year. */
const opensslDate = (date: Date) => `${date.toISOString().replace(/[-:T]/g, '').slice(0, 14)}Z`;

function newKeyPem(): string {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}

async function withTempDir<T>(work: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'vault-webhook-pki-'));
  try {
    return await work(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function openssl(args: string[], input: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      'openssl',
      args,
      { env: { ...process.env, OPENSSL_CONF: '/dev/null' }, timeout: 30_000, encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`openssl ${args[0]} failed: ${stderr.trim() || err.message}`));
        else resolve(stdout);
      },
    );
    child.stdin?.on('error', () => {});
    child.stdin?.end(input);
  });
}

// ---------------------------------------------------------------------------------------
// Keeping it current: the state in a Secret, the bundle in the webhook configuration.

/** Where the state lives (a Secret); `version` guards against two replicas rotating at once. */
export interface CertStore {
  load(): Promise<{ state: CertState; version: string } | undefined>;
  /** Throws a conflict (the caller reloads) when `version` is stale. */
  save(state: CertState, version: string | undefined): Promise<void>;
}

export interface CertRotatorDeps {
  store: CertStore;
  policy: RotationPolicy;
  clock: Clock;
  /** Writes the bundle into the MutatingWebhookConfiguration. */
  publishCaBundle(pem: string): Promise<void>;
  /** Gives the serving certificate to the HTTPS server. */
  useServingCertificate(serving: KeyPairPem): void;
}

/**
 * One pass: load, apply every due action, save, publish the bundle, use the serving
 * certificate. Run it at start-up and then periodically (an hour is plenty: renewals are
 * planned weeks ahead).
 */
export function createCertRotator(deps: CertRotatorDeps) {
  return {
    async ensure(): Promise<{ state: CertState; actions: RotationAction[] }> {
      for (let attempt = 0; ; attempt++) {
        const loaded = await deps.store.load();
        let state = loaded?.state;
        const actions: RotationAction[] = [];
        const now = deps.clock();
        for (let step = 0; step < 6; step++) {
          const action = planRotation(state, now, deps.policy);
          if (action === 'none') break;
          actions.push(action);
          state = await applyRotation(state, action, deps.policy, now);
        }
        if (!state) throw new Error('certificate state missing after rotation');
        if (actions.length > 0) {
          try {
            await deps.store.save(state, loaded?.version);
          } catch (err) {
            if (attempt < 3) continue;
            throw err;
          }
        }
        // Bundle first: the new serving certificate must already be trusted.
        await deps.publishCaBundle(caBundle(state, now));
        deps.useServingCertificate(state.serving);
        return { state, actions };
      }
    },
  };
}

/** The Secret's data keys. */
export const secretKeys = {
  caCert: 'ca.crt',
  caKey: 'ca.key',
  cert: 'tls.crt',
  key: 'tls.key',
  nextCaCert: 'next-ca.crt',
  nextCaKey: 'next-ca.key',
  nextStagedAt: 'next-staged-at',
  previous: 'previous-ca.crt',
} as const;

export function stateToSecretData(state: CertState): Record<string, string> {
  const b64 = (text: string) => Buffer.from(text).toString('base64');
  return {
    [secretKeys.caCert]: b64(state.ca.certPem),
    [secretKeys.caKey]: b64(state.ca.keyPem),
    [secretKeys.cert]: b64(state.serving.certPem),
    [secretKeys.key]: b64(state.serving.keyPem),
    [secretKeys.previous]: b64(state.previous.join('')),
    ...(state.next
      ? {
          [secretKeys.nextCaCert]: b64(state.next.certPem),
          [secretKeys.nextCaKey]: b64(state.next.keyPem),
          [secretKeys.nextStagedAt]: b64(state.next.stagedAt),
        }
      : {}),
  };
}

export function stateFromSecretData(data: Record<string, string> | undefined): CertState | undefined {
  if (!data) return undefined;
  const text = (key: string) =>
    data[key] === undefined ? undefined : Buffer.from(data[key]!, 'base64').toString('utf8');
  const ca = { certPem: text(secretKeys.caCert), keyPem: text(secretKeys.caKey) };
  const serving = { certPem: text(secretKeys.cert), keyPem: text(secretKeys.key) };
  if (!ca.certPem || !ca.keyPem || !serving.certPem || !serving.keyPem) return undefined;
  const nextCert = text(secretKeys.nextCaCert);
  const nextKey = text(secretKeys.nextCaKey);
  const stagedAt = text(secretKeys.nextStagedAt);
  const previous =
    (text(secretKeys.previous) ?? '').match(
      /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g,
    ) ?? [];
  return {
    ca: { certPem: ca.certPem, keyPem: ca.keyPem },
    serving: { certPem: serving.certPem, keyPem: serving.keyPem },
    previous,
    ...(nextCert && nextKey && stagedAt ? { next: { certPem: nextCert, keyPem: nextKey, stagedAt } } : {}),
  };
}
