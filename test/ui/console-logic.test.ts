/** The console's pure parts (no browser): SSE parsing, lease bookkeeping, and the /ui router. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import express from 'express';
import { describe, expect, it } from 'vitest';
import type { Lease } from '../../src/contract/leases.js';
import { uiContentSecurityPolicy, uiRouter } from '../../src/server/ui.js';
import { leasesByPod } from '../../ui/src/lib/kubernetes.js';
import { LeaseIndex, listItems } from '../../ui/src/lib/lease-index.js';
import { formatRemaining, leaseMatcher } from '../../ui/src/lib/leases.js';
import { pastedToken } from '../../ui/src/lib/pasted-token.js';
import { createSseParser, type SseMessage } from '../../ui/src/lib/sse.js';

const lease = (
  id: string,
  name: string,
  credentialName = 'db',
  type: 'agent' | 'human' = 'agent',
): Lease => ({
  id,
  tenant: 'dev',
  credentialName,
  version: 1,
  identity: { type, name },
  issuedBy: { type, name },
  issuedAt: '2026-01-01T00:00:00.000Z',
  expiresAt: '2026-01-01T00:10:00.000Z',
  maxExpiresAt: '2026-01-01T01:00:00.000Z',
  renewable: true,
  renewCount: 0,
  state: 'active',
});

describe('SSE parser', () => {
  it('yields whole events across arbitrary chunk boundaries, skipping comments', () => {
    const seen: SseMessage[] = [];
    const feed = createSseParser((m) => seen.push(m));
    const text =
      ': connected\n\nevent: issued\ndata: {"a":1}\n\n: heartbeat\r\n\r\nevent: revoked\r\ndata: x\r\ndata: y\r\n\r\n';
    for (const char of text) feed(char);
    expect(seen).toEqual([
      { event: 'issued', data: '{"a":1}' },
      { event: 'revoked', data: 'x\ny' },
    ]);
  });
});

describe('lease index', () => {
  const at = (minutes: number) => new Date(Date.UTC(2026, 0, 1, 0, minutes)).toISOString();
  const expiring = (l: Lease, minutes: number): Lease => ({ ...l, expiresAt: at(minutes) });

  it('adds issued and renewed leases and drops revoked and expired ones', () => {
    const index = new LeaseIndex();
    const a = lease('lease_a', 'claude');
    const b = lease('lease_b', 'claude');
    index.apply([
      { type: 'issued', lease: a },
      { type: 'issued', lease: b },
    ]);
    const version = index.version;
    index.apply([
      { type: 'renewed', lease: { ...a, renewCount: 1 } },
      { type: 'revoked', lease: { ...b, state: 'revoked' } },
    ]);
    expect(index.version).toBeGreaterThan(version);
    expect([...index.values()].map((l) => l.id)).toEqual(['lease_a']);
    expect(index.get('lease_a')!.renewCount).toBe(1);
    // An event about a lease it never held changes nothing.
    expect(index.apply([{ type: 'revoked', lease: { ...b, state: 'revoked' } }])).toBe(false);
    index.apply([{ type: 'expired', lease: a }]);
    expect(index.size).toBe(0);
    expect(index.groups()).toEqual([]);
  });

  it('keeps groups in key order and each group by expiry as leases come, renew and go', () => {
    const index = new LeaseIndex('identity');
    index.apply([
      { type: 'issued', lease: expiring(lease('l1', 'bot'), 30) },
      { type: 'issued', lease: expiring(lease('l2', 'ann', 'db', 'human'), 5) },
      { type: 'issued', lease: expiring(lease('l3', 'bot'), 10) },
      { type: 'issued', lease: expiring(lease('l4', 'bot'), 20) },
    ]);
    const view = () => index.groups().map((g) => [g.key, g.leases.map((l) => l.id)]);
    expect(view()).toEqual([
      ['agent/bot', ['l3', 'l4', 'l1']],
      ['human/ann', ['l2']],
    ]);
    // Renewed past the others: it moves to the end of its group.
    index.apply([{ type: 'renewed', lease: expiring(lease('l3', 'bot'), 40) }]);
    expect(view()[0]).toEqual(['agent/bot', ['l4', 'l1', 'l3']]);
    expect(index.earliestExpiry()).toBe(Date.parse(at(5)));
    index.setGroupBy('credential');
    expect(view()).toEqual([['db', ['l2', 'l4', 'l1', 'l3']]]);
    // Expiry: everything due at 20 minutes goes.
    expect(index.expire(Date.parse(at(20)))).toBe(true);
    expect(view()).toEqual([['db', ['l1', 'l3']]]);
    index.remove(['l1', 'l3']);
    expect(index.groups()).toEqual([]);
    expect(index.earliestExpiry()).toBeUndefined();
  });

  it('ends in the same order as sorting from scratch, after a long random run of events', () => {
    let seed = 7;
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const index = new LeaseIndex();
    const live = new Map<string, Lease>();
    for (let step = 0; step < 3000; step += 1) {
      const id = `l${random(400)}`;
      const held = live.get(id);
      const next = expiring(lease(id, `bot-${random(12)}`, `cred-${random(5)}`), random(120));
      if (held && random(3) === 0) {
        index.apply([{ type: 'revoked', lease: { ...held, state: 'revoked' } }]);
        live.delete(id);
      } else {
        const renewed = held
          ? { ...next, identity: held.identity, credentialName: held.credentialName }
          : next;
        index.apply([{ type: held ? 'renewed' : 'issued', lease: renewed }]);
        live.set(id, renewed);
      }
      if (step === 1500) index.setGroupBy('credential');
    }
    const expected = new Map<string, string[]>();
    const sorted = [...live.values()].sort(
      (a, b) => a.expiresAt.localeCompare(b.expiresAt) || a.id.localeCompare(b.id),
    );
    for (const l of sorted) expected.set(l.credentialName, [...(expected.get(l.credentialName) ?? []), l.id]);
    expect(index.groups().map((g) => [g.key, g.leases.map((l) => l.id)])).toEqual(
      [...expected.entries()].sort(([a], [b]) => a.localeCompare(b)),
    );
    expect(index.size).toBe(live.size);
  });

  it('lists headings and leases under a filter, with positions and counts for each group', () => {
    const index = new LeaseIndex();
    index.replaceAll([
      lease('lease_1', 'bot', 'db'),
      lease('lease_2', 'bot', 'api'),
      lease('lease_3', 'ann', 'db', 'human'),
      { ...lease('lease_4', 'old', 'db'), state: 'revoked' },
    ]);
    const all = listItems(index, { text: '', identityType: '' });
    expect(all.shown).toBe(3);
    expect(
      all.items.map((i) => (i.kind === 'group' ? `${i.key}(${i.shown})` : `${i.key}@${i.position}`)),
    ).toEqual(['g:agent/bot(2)', 'lease_1@1', 'lease_2@2', 'g:human/ann(1)', 'lease_3@1']);
    expect(all.items.flatMap((i) => (i.kind === 'lease' ? [all.items[i.header]!.key] : []))).toEqual([
      'g:agent/bot',
      'g:agent/bot',
      'g:human/ann',
    ]);
    const api = listItems(index, { text: 'API', identityType: '' });
    expect(api.items.map((i) => i.key)).toEqual(['g:agent/bot', 'lease_2']);
    expect(listItems(index, { text: '', identityType: 'human' }).items.map((i) => i.key)).toEqual([
      'g:human/ann',
      'lease_3',
    ]);
    expect(leaseMatcher({ text: ' lease_3 ', identityType: '' })(lease('lease_3', 'x'))).toBe(true);
    expect([
      formatRemaining(0),
      formatRemaining(5_500),
      formatRemaining(65_000),
      formatRemaining(3_720_000),
    ]).toEqual(['expired', '5s', '1m 05s', '1h 02m']);
  });
});

describe('Kubernetes view', () => {
  it('groups workload leases by namespace and pod label, else by ServiceAccount; labels move no lease', () => {
    const workload = (id: string, sa: string, labels?: Record<string, string>): Lease => ({
      ...lease(id, 'x'),
      identity: { type: 'workload', name: sa },
      ...(labels ? { labels } : {}),
    });
    const pod = (name: string, namespace: string) => ({
      'vault.ghoststack.io/pod': name,
      'vault.ghoststack.io/namespace': namespace,
    });
    const view = leasesByPod([
      workload('l1', 'system:serviceaccount:payments:api', pod('api-2', 'payments')),
      workload('l2', 'system:serviceaccount:payments:api', pod('api-1', 'payments')),
      workload('l3', 'system:serviceaccount:payments:api'),
      workload('l4', 'system:serviceaccount:billing:worker', pod('worker-0', 'billing')),
      lease('l5', 'claude-code'),
      // Labels are the lease creator's word: an agent's lease is no pod's, and a ServiceAccount's
      // lease stays in its own namespace whatever namespace its label names.
      { ...lease('l6', 'claude-code'), labels: pod('api-9', 'payments') },
      workload('l7', 'system:serviceaccount:sandbox:builder', pod('api-1', 'payments')),
    ]);
    expect(
      view.map((n) => [n.namespace, n.holders.map((h) => [h.label, h.leases.map((l) => l.id)])]),
    ).toEqual([
      ['billing', [['pod worker-0', ['l4']]]],
      [
        'payments',
        [
          ['pod api-1', ['l2']],
          ['pod api-2', ['l1']],
          ['serviceaccount api', ['l3']],
        ],
      ],
      ['sandbox', [['pod api-1', ['l7']]]],
    ]);
  });
});

describe('sign-in', () => {
  it('takes the token out of the export lines `vault dev` prints, pasted as they come', () => {
    const token = 'vlt_abc-DEF_123export';
    for (const pasted of [
      token,
      `  ${token}\t`,
      `export VAULT_TOKEN=${token}`,
      `export VAULT_TOKEN='${token}'`,
      `VAULT_TOKEN="${token}"`,
      // All three lines in a one-line field: the line breaks are dropped.
      `export VAULT_ADDR=http://127.0.0.1:8200export VAULT_TOKEN=${token}export VAULT_TENANT=dev`,
      `export VAULT_TOKEN=${token} export VAULT_TENANT=dev`,
    ]) {
      expect(pastedToken(pasted), pasted).toBe(token);
    }
    expect(pastedToken('   ')).toBe('');
  });
});

describe('/ui router', () => {
  async function serve(dir: string) {
    const app = express();
    app.use('/ui', uiRouter(dir));
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return { base, close: () => new Promise((resolve) => server.close(resolve)) };
  }

  it('answers 503 with the fix when the console is not built, CSP included', async () => {
    const { base, close } = await serve(mkdtempSync(join(tmpdir(), 'vault-ui-empty-')));
    const response = await fetch(`${base}/ui/`);
    expect(response.status).toBe(503);
    expect(await response.text()).toMatch(/npm run build/);
    expect(response.headers.get('content-security-policy')).toBe(uiContentSecurityPolicy);
    await close();
  });

  it('serves index.html for client routes, never caches it, and 404s missing assets', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vault-ui-built-'));
    writeFileSync(join(dir, 'index.html'), '<!doctype html><title>x</title>');
    const { base, close } = await serve(dir);
    for (const path of ['/ui', '/ui/', '/ui/leases']) {
      const response = await fetch(`${base}${path}`);
      expect(response.status, path).toBe(200);
      expect(response.headers.get('cache-control')).toBe('no-store');
      expect(response.headers.get('x-frame-options')).toBe('DENY');
    }
    expect((await fetch(`${base}/ui/assets/nope.js`)).status).toBe(404);
    await close();
  });
});
