import { X509Certificate } from 'node:crypto';
import { connect } from 'node:tls';
import { describe, expect, it } from 'vitest';
import {
  applyRotation,
  type CertState,
  type CertStore,
  caBundle,
  createCertRotator,
  defaultRotationPolicy,
  planRotation,
  stateFromSecretData,
  stateToSecretData,
} from '../../src/webhook/certs.js';

const policy = defaultRotationPolicy({ dnsNames: ['vault-injector.vault.svc'], ipAddresses: ['127.0.0.1'] });
const day = 86_400_000;
const later = (ms: number) => new Date(Date.now() + ms);

/** A store that keeps the state in memory, with the same version check as the Secret. */
function memoryStore(): CertStore & { saves: number } {
  let current: { state: CertState; version: string } | undefined;
  return {
    saves: 0,
    async load() {
      return current && structuredClone(current);
    },
    async save(state, version) {
      if ((current?.version ?? undefined) !== version) throw new Error('conflict');
      this.saves++;
      current = { state: structuredClone(state), version: String(this.saves) };
    },
  };
}

describe('webhook certificates', () => {
  it('creates a CA and a serving certificate for the hosts, signed by it', async () => {
    const state = await applyRotation(
      undefined,
      planRotation(undefined, new Date(), policy),
      policy,
      new Date(),
    );
    const ca = new X509Certificate(state.ca.certPem);
    const serving = new X509Certificate(state.serving.certPem);
    expect(ca.ca).toBe(true);
    expect(serving.ca).toBe(false);
    expect(serving.checkIssued(ca)).toBe(true);
    expect(serving.verify(ca.publicKey)).toBe(true);
    expect(serving.subjectAltName).toContain('DNS:vault-injector.vault.svc');
    expect(serving.subjectAltName).toContain('IP Address:127.0.0.1');
    expect(planRotation(state, new Date(), policy)).toBe('none');
  });

  it('plans renewals from the injected clock: serving first, then a staged CA, promoted after the overlap', async () => {
    const now = new Date();
    const state = await applyRotation(undefined, 'create', policy, now);
    expect(planRotation(state, later(61 * day), policy)).toBe('reissue-serving');

    const t1 = later(310 * day);
    expect(planRotation(state, t1, policy)).toBe('stage-ca');
    const staged = await applyRotation(state, 'stage-ca', policy, t1);
    // Both CAs are trusted while the old one still signs the serving certificate.
    const bundle = caBundle(staged, t1);
    expect(bundle).toContain(state.ca.certPem.trim());
    expect(bundle).toContain(staged.next!.certPem.trim());
    expect(staged.serving.certPem).toBe(state.serving.certPem);
    expect(planRotation(staged, new Date(t1.getTime() + policy.overlapMs - 1), policy)).not.toBe(
      'promote-ca',
    );

    const t2 = new Date(t1.getTime() + policy.overlapMs);
    expect(planRotation(staged, t2, policy)).toBe('promote-ca');
    const promoted = await applyRotation(staged, 'promote-ca', policy, t2);
    expect(promoted.ca.certPem).toBe(staged.next!.certPem);
    expect(
      new X509Certificate(promoted.serving.certPem).checkIssued(new X509Certificate(promoted.ca.certPem)),
    ).toBe(true);
    expect(promoted.previous).toEqual([state.ca.certPem]);
    expect(caBundle(promoted, t2)).toContain(state.ca.certPem.trim());
    // Once the old CA has expired it leaves the bundle.
    expect(caBundle(promoted, later(366 * day))).not.toContain(state.ca.certPem.trim());
    expect(planRotation(promoted, t2, policy)).toBe('none');
  });

  it('reissues a serving certificate that no longer covers the hosts', async () => {
    const state = await applyRotation(undefined, 'create', policy, new Date());
    expect(planRotation(state, new Date(), { ...policy, dnsNames: ['other.svc'] })).toBe('reissue-serving');
  });

  it('round-trips through Secret data without losing the staged CA', async () => {
    const state = await applyRotation(undefined, 'create', policy, new Date());
    const staged = await applyRotation(state, 'stage-ca', policy, new Date());
    expect(stateFromSecretData(stateToSecretData(staged))).toEqual(staged);
    expect(stateFromSecretData({})).toBeUndefined();
  });

  it('keeps the bundle published and the server using the current certificate', async () => {
    const store = memoryStore();
    const published: string[] = [];
    const used: string[] = [];
    let now = new Date();
    const rotator = createCertRotator({
      store,
      policy,
      clock: () => now,
      publishCaBundle: async (pem) => {
        published.push(pem);
      },
      useServingCertificate: (s) => used.push(s.certPem),
    });
    const first = await rotator.ensure();
    expect(first.actions).toEqual(['create']);
    const again = await rotator.ensure();
    expect(again.actions).toEqual([]);
    expect(store.saves).toBe(1);
    expect(used[1]).toBe(used[0]);

    now = later(61 * day);
    const renewed = await rotator.ensure();
    expect(renewed.actions).toEqual(['reissue-serving']);
    expect(used.at(-1)).not.toBe(used[0]);
    expect(published.at(-1)).toContain(first.state.ca.certPem.trim());
  });

  it('serves TLS that verifies against the published bundle', async () => {
    const { createServer } = await import('node:https');
    const state = await applyRotation(undefined, 'create', policy, new Date());
    const server = createServer({ cert: state.serving.certPem, key: state.serving.keyPem }, (_req, res) =>
      res.end('ok'),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const port = (server.address() as { port: number }).port;
      const authorized = await new Promise<boolean>((resolve, reject) => {
        const socket = connect({ host: '127.0.0.1', port, ca: caBundle(state, new Date()) }, () => {
          resolve(socket.authorized);
          socket.end();
        });
        socket.on('error', reject);
      });
      expect(authorized).toBe(true);
    } finally {
      server.close();
    }
  });
});
