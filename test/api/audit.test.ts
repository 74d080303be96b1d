import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Vault } from '../../src/sdk/index.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';

describe('the audit chain', () => {
  let vault: TestVault;
  let saved: Array<{ key: string; value: string }>;

  beforeAll(async () => {
    vault = await startTestVault();
    await vault.call('POST', '/v1/credentials', { body: { name: 'k', type: 'generic', value: 'v1' } });
    for (let i = 0; i < 5; i++)
      await vault.call('POST', '/v1/leases', { body: { credentialName: 'k', ttl: '1m' } });
    const { kvs } = await vault.store.range(`/vault/t/${vault.tenant}/audit`);
    saved = kvs.map(({ key, value }) => ({ key, value }));
  });
  afterAll(() => vault.close());

  // Each case damages the records behind the API's back; put them back afterwards.
  beforeEach(async () => {
    await vault.store.txn({ success: [{ type: 'deletePrefix', prefix: `/vault/t/${vault.tenant}/audit/` }] });
    await vault.store.txn({ success: saved.map(({ key, value }) => ({ type: 'put' as const, key, value })) });
    vault.core.committer.forget();
  });

  const recordKey = (seq: number) => `/vault/t/${vault.tenant}/audit/${String(seq).padStart(16, '0')}`;
  const verify = async () => (await vault.call('GET', '/v1/audit/verify')).body;

  it('records every decision and verifies intact', async () => {
    const result = await verify();
    expect(result.ok).toBe(true);
    expect(result.records).toBeGreaterThanOrEqual(7);
    const records = (await vault.call('GET', '/v1/audit?action=lease.create')).body.records;
    expect(records).toHaveLength(5);
    for (const record of records) {
      expect(record).toMatchObject({
        tenant: vault.tenant,
        outcome: 'allowed',
        actor: { type: 'human', name: 'root' },
      });
      expect(record.requestId).toBeTruthy();
      expect(record.source).toBeTruthy();
      expect(record.valueHmac).toMatch(/^hmac-sha256:/);
    }
  });

  it('detects an edited record', async () => {
    const kv = await vault.store.get(recordKey(3));
    const edited = { ...JSON.parse(kv!.value), outcome: 'denied' };
    await vault.store.txn({ success: [{ type: 'put', key: recordKey(3), value: JSON.stringify(edited) }] });
    const result = await verify();
    expect(result.ok).toBe(false);
    expect(result.brokenAt).toBe(3);
    expect(result.reason).toContain('modified');
  });

  it('detects a removed record', async () => {
    await vault.store.txn({ success: [{ type: 'delete', key: recordKey(4) }] });
    const result = await verify();
    expect(result.ok).toBe(false);
    expect(result.reason).toContain('removed or reordered');
  });

  it('detects reordered records', async () => {
    const a = await vault.store.get(recordKey(2));
    const b = await vault.store.get(recordKey(3));
    await vault.store.txn({
      success: [
        { type: 'put', key: recordKey(2), value: b!.value },
        { type: 'put', key: recordKey(3), value: a!.value },
      ],
    });
    expect((await verify()).ok).toBe(false);
  });

  it('detects the newest records cut off', async () => {
    const { kvs } = await vault.store.range(`/vault/t/${vault.tenant}/audit/`);
    await vault.store.txn({ success: [{ type: 'delete', key: kvs.at(-1)!.key }] });
    const result = await verify();
    expect(result.ok).toBe(false);
    expect(result.reason).toContain('newest records are missing');
  });

  it('fails closed: when the audit record cannot be written, the change does not happen', async () => {
    const other = await startTestVault();
    try {
      await other.store.close();
      const result = await other.call('POST', '/v1/credentials', {
        body: { name: 'n', type: 'generic', value: 'v' },
      });
      expect(result.status).toBeGreaterThanOrEqual(500);
      expect(result.text).not.toContain('"name":"n"');
    } finally {
      await other.close().catch(() => undefined);
    }
  });
});

describe('GET /v1/audit reads a bounded number of records per request', () => {
  const budget = 10;
  let vault: TestVault;
  let deleteSeq: number;

  beforeAll(async () => {
    vault = await startTestVault({ core: { auditScanBudget: budget } });
    await vault.call('POST', '/v1/credentials', { body: { name: 'k', type: 'generic', value: 'v1' } });
    for (let i = 0; i < 35; i++) await vault.call('GET', '/v1/credentials/k');
    // The one record a selective filter is after, far behind the budget.
    await vault.call('DELETE', '/v1/credentials/k');
    const { kvs } = await vault.store.range(`/vault/t/${vault.tenant}/audit/`);
    const deletes = kvs.map((kv) => JSON.parse(kv.value)).filter((r) => r.action === 'credential.delete');
    expect(deletes).toHaveLength(1);
    deleteSeq = deletes[0].seq;
    expect(deleteSeq).toBeGreaterThan(3 * budget);
  });
  afterAll(() => vault.close());

  it('a filter that matches nothing within the budget answers at once with where to go on', async () => {
    const first = await vault.call('GET', '/v1/audit?action=credential.delete&limit=5');
    expect(first.status).toBe(200);
    expect(first.body.records).toEqual([]);
    expect(first.body.next).toBe(budget);
    // Followed to the end: found exactly once, and every request read at most the budget.
    const found: Array<{ seq: number }> = [];
    let after = 0;
    for (let requests = 0; ; requests++) {
      expect(requests).toBeLessThan(20);
      const page = await vault.call('GET', `/v1/audit?action=credential.delete&limit=5&afterSeq=${after}`);
      found.push(...page.body.records);
      if (page.body.next === undefined) break;
      expect(page.body.next - after).toBeLessThanOrEqual(budget);
      after = page.body.next;
    }
    expect(found.map((r) => r.seq)).toEqual([deleteSeq]);
  });

  it('paging without a filter returns every record once, in order, `next` at each full page', async () => {
    const seqs: number[] = [];
    let after = 0;
    for (;;) {
      const page = await vault.call('GET', `/v1/audit?limit=7&afterSeq=${after}`);
      seqs.push(...page.body.records.map((r: { seq: number }) => r.seq));
      if (page.body.next === undefined) break;
      after = page.body.next;
    }
    // Queries are audited too, so the chain grows while it is read: all of it, nothing twice.
    expect(seqs.length).toBeGreaterThan(deleteSeq);
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
  });

  it('the SDK follows `next`, so a selective query answers as one scan would', async () => {
    const sdk = await Vault.connect({ addr: vault.url, token: vault.rootToken, tenant: vault.tenant });
    {
      const deleted = await sdk.audit.query({ action: 'credential.delete' });
      expect(deleted.map((r) => r.seq)).toEqual([deleteSeq]);
      const reads = await sdk.audit.query({ action: 'credential.read-metadata', limit: 30 });
      expect(reads).toHaveLength(30);
      expect(new Set(reads.map((r) => r.seq)).size).toBe(30);
    }
  });
});

describe('newest=true reads back from the head: the tail of a long chain costs what a short one does', () => {
  const budget = 10;
  let vault: TestVault;
  let all: Array<{ seq: number; action: string }>;

  beforeAll(async () => {
    vault = await startTestVault({ core: { auditScanBudget: budget } });
    await vault.call('POST', '/v1/credentials', { body: { name: 'k', type: 'generic', value: 'v1' } });
    // The one create early on, then many reads, then one delete near the head.
    for (let i = 0; i < 60; i++) await vault.call('GET', '/v1/credentials/k');
    await vault.call('DELETE', '/v1/credentials/k');
    for (let i = 0; i < 5; i++) await vault.call('GET', '/v1/credentials');
    const { kvs } = await vault.store.range(`/vault/t/${vault.tenant}/audit/`);
    all = kvs.map((kv) => JSON.parse(kv.value));
  });
  afterAll(() => vault.close());

  it('answers the newest records, oldest first, from one read near the head', async () => {
    const page = await vault.call('GET', '/v1/audit?newest=true&limit=4');
    expect(page.status, page.text).toBe(200);
    expect(page.body.records.map((r: { seq: number }) => r.seq)).toEqual(all.slice(-4).map((r) => r.seq));
    // Older records remain: where to go on.
    expect(page.body.before).toBe(all.at(-4)!.seq);
    const older = await vault.call('GET', `/v1/audit?newest=true&limit=4&beforeSeq=${page.body.before}`);
    expect(older.body.records.map((r: { seq: number }) => r.seq)).toEqual(
      all.slice(-8, -4).map((r) => r.seq),
    );
  });

  it('a selective filter reads back at most the budget per request; the SDK follows `before` to the match', async () => {
    const first = await vault.call('GET', '/v1/audit?newest=true&action=credential.create&limit=5');
    expect(first.body.records).toEqual([]);
    expect(first.body.before).toBe(all.at(-1)!.seq - budget + 1);
    const seen: string[] = [];
    const fetchCounting: typeof fetch = (input, init) => {
      seen.push(String(input));
      return fetch(input, init);
    };
    const sdk = await Vault.connect({
      addr: vault.url,
      token: vault.rootToken,
      tenant: vault.tenant,
      fetch: fetchCounting,
    });
    seen.length = 0;
    const created = await sdk.audit.tail({ action: 'credential.create', limit: 5 });
    expect(created.map((r) => r.action)).toEqual(['credential.create']);
    // Back to the start of the chain, a budget at a time: each request went on 10 records
    // further back than the one before, and the last reached the chain's start.
    const audits = seen.filter((url) => new URL(url).pathname === '/v1/audit');
    const befores = audits.slice(1).map((url) => Number(new URL(url).searchParams.get('beforeSeq')));
    expect(new URL(audits[0]!).searchParams.get('beforeSeq')).toBeNull();
    expect(befores.slice(1).map((b, i) => befores[i]! - b)).toEqual(befores.slice(1).map(() => budget));
    expect(befores.at(-1)).toBeLessThanOrEqual(budget + 1);
    const deleted = await sdk.audit.tail({ action: 'credential.delete', limit: 1 });
    expect(deleted.map((r) => r.seq)).toEqual(
      all.filter((r) => r.action === 'credential.delete').map((r) => r.seq),
    );
  });

  it('a poll for a rare action goes on from the last record read, not from the last match', async () => {
    const sdk = await Vault.connect({ addr: vault.url, token: vault.rootToken, tenant: vault.tenant });
    const [head] = await sdk.audit.tail({ limit: 1 });
    const first = await sdk.audit.poll({ action: 'credential.delete', afterSeq: head!.seq });
    expect(first.records).toEqual([]);
    expect(first.more).toBe(false);
    // It read what was appended after the head (if anything), no more.
    expect(first.through).toBeGreaterThanOrEqual(head!.seq);
    expect(first.through - head!.seq).toBeLessThan(budget);
    for (let i = 0; i < 3; i++) await vault.call('GET', '/v1/credentials');
    const second = await sdk.audit.poll({ action: 'credential.delete', afterSeq: first.through });
    expect(second.records).toEqual([]);
    expect(second.through - first.through).toBeGreaterThanOrEqual(3);
    expect(second.through - first.through).toBeLessThan(budget);
    await vault.call('POST', '/v1/credentials', { body: { name: 'k2', type: 'generic', value: 'v' } });
    await vault.call('DELETE', '/v1/credentials/k2');
    const third = await sdk.audit.poll({ action: 'credential.delete', afterSeq: second.through });
    expect(third.records.map((r) => r.resource)).toEqual(['credential/k2']);
  });

  it('refuses beforeSeq without newest, and bad values, with 400', async () => {
    const alone = await vault.call('GET', '/v1/audit?beforeSeq=5');
    expect(alone.status).toBe(400);
    expect(alone.body.error.message).toMatch(/beforeSeq goes with newest=true/);
    const forward = await vault.call('GET', '/v1/audit?newest=true&afterSeq=3');
    expect(forward.status).toBe(400);
    expect(forward.body.error.message).toMatch(/with newest=true use beforeSeq/);
    for (const bad of ['newest=yes', 'newest=true&beforeSeq=0', 'newest=true&beforeSeq=x']) {
      expect((await vault.call('GET', `/v1/audit?${bad}`)).status, bad).toBe(400);
    }
  });
});
