import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemContext } from '../../src/core/index.js';
import { type Replicas, startReplicas } from './session10-replicas.js';

// Red team, session 10b: a clipped record still verifies and is still served (held).
//
// clip() cuts at a UTF-16 index, so the cut can split a surrogate pair and leave a lone high
// surrogate in the record. JSON.stringify escapes it (`\ud83d`), and the link is computed over
// the same string the verifier parses back, so the chain still verifies on the replica that
// wrote it and on another replica (catch-up and full read), queries and lookups still serve the
// record, and the record is smaller than the raw input.

describe('clipped records (held)', () => {
  let cluster: Replicas;

  beforeAll(async () => {
    cluster = await startReplicas(2);
  }, 60_000);
  afterAll(() => cluster?.close());

  it('a reason and resource cut inside a surrogate pair verify on both replicas and are served', async () => {
    const [a, b] = cluster.replicas.map((r) => r.vault) as [
      (typeof cluster.replicas)[0]['vault'],
      (typeof cluster.replicas)[0]['vault'],
    ];
    const ctx = () => systemContext(a.tenant, { type: 'human', name: 'root' });
    // The reason is cut at 20,000 bytes of JSON, the resource at 1,024: both in a run of emoji
    // (two UTF-16 units, four UTF-8 bytes each), where a cut could split a surrogate pair.
    const reason = `${'r'.repeat(19_900)}${'😀'.repeat(600)}`;
    const resource = `credential/${'n'.repeat(990)}${'😀'.repeat(100)}`;
    const jsonBytes = (text: string) => Buffer.byteLength(JSON.stringify(text));
    const loneSurrogate = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
    await a.core.committer.record(ctx(), { action: 'test.clip', resource, outcome: 'allowed', reason });
    // The other replica appends after it (it reads the head, verifies the clipped record).
    await b.core.committer.record(ctx(), { action: 'test.after', resource: 'x', outcome: 'allowed' });
    // And the first appends again: it lost the head, catches up through the failure reads.
    await a.core.committer.record(ctx(), { action: 'test.again', resource: 'y', outcome: 'allowed' });

    for (const vault of [a, b]) {
      const verify = await vault.call('POST', '/v1/audit/verify', { body: {} });
      expect(verify.status, verify.text).toBe(200);
      expect(verify.body.ok, verify.text).toBe(true);
      const query = await vault.call('GET', '/v1/audit?action=test.clip');
      expect(query.status).toBe(200);
      const [record] = query.body.records;
      expect(jsonBytes(record.reason)).toBeLessThanOrEqual(20_000);
      expect(record.reason).toMatch(/^r{19900}(😀)+… \(\d+ more characters\)$/u);
      expect(record.reason).not.toMatch(loneSurrogate);
      expect(jsonBytes(record.resource)).toBeLessThanOrEqual(1_024);
      expect(record.resource).not.toMatch(loneSurrogate);
      expect(record.resource.startsWith('credential/n')).toBe(true);
      // Prefix filters on the clipped resource still find it.
      const byResource = await vault.call(
        'GET',
        `/v1/audit?resource=${encodeURIComponent(`credential/${'n'.repeat(100)}`)}`,
      );
      expect(byResource.body.records.map((r: { action: string }) => r.action)).toContain('test.clip');
      const checkpoint = await vault.call('POST', '/v1/audit/checkpoints', { body: {} });
      expect(checkpoint.status, checkpoint.text).toBeLessThan(300);
    }
    // The stream copy of the writer carries the same (clipped) record.
    const line = a.auditLines().find((r) => r.action === 'test.clip');
    expect(jsonBytes(line?.reason ?? '')).toBeLessThanOrEqual(20_000);
    for (const vault of [a, b]) expect(vault.core.auditIntegrity.list()).toEqual([]);
  });
});
