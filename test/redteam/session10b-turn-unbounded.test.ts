import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keys } from '../../src/core/keys.js';
import type { Store, Txn } from '../../src/store/store.js';
import { storeWith } from '../support/store-proxy.js';
import { type Replicas, startReplicas } from './session10-replicas.js';

// Red team, session 10b: a lost turn is never counted, so a turn that keeps moving holds a
// tenant's writes forever.
//
// Every commit compares `keys.auditTurn(tenant)`. A transaction that failed only because the
// turn moved ("turnTaken") waits min(2 x last txn ms, 50 ms) and goes again, and the committer
// deliberately counts it neither as a head race (64 allowed) nor as an attempt (8 allowed). So
// whatever bumps the turn key faster than a round trip (a writer of the store, a replica of
// another version or with a bug in its claim logic) makes every write of the tenant loop: no
// answer at all (not 409, not 503) for as long as it lasts, the request's promise pending in
// the committer even after the client gave up, and a transaction every few milliseconds per
// replica. Every other loss in the committer is bounded (MAX_ATTEMPTS, MAX_HEAD_RACES,
// MAX_HEAD_READS); this one is not. Compare: the same writer re-putting the chain head instead
// ends in a 409 after 64 rounds.
//
// Fix: count turn losses too (e.g. up to MAX_HEAD_RACES per change, then 409 "retry"), or honour
// a claim only once per claimant's head race (a turn that moves again while the head does not
// is not a claim of a writer that lost the head).

describe('turn losses are bounded', () => {
  let cluster: Replicas;
  let txns = 0;

  beforeAll(async () => {
    cluster = await startReplicas(1, {
      wrap: (_i, store: Store) =>
        storeWith(store, (inner) => ({
          txn(txn: Txn) {
            txns += 1;
            return inner.txn(txn);
          },
        })),
    });
  }, 60_000);
  afterAll(() => cluster?.close());

  it('a write answers (2xx, 409 or 503) within 8 s while the turn key keeps moving', async () => {
    const vault = cluster.replicas[0]!.vault;
    const raw = cluster.replicas[0]!.raw;
    const turnKey = keys.auditTurn(vault.tenant);
    // Warm up: the head and turn are cached.
    expect(
      (await vault.call('POST', '/v1/credentials', { body: { name: 'warm', type: 'generic', value: 'v' } }))
        .status,
    ).toBe(201);

    let bumping = true;
    let bumps = 0;
    const bumper = async () => {
      while (bumping) {
        await raw.txn({ success: [{ type: 'put', key: turnKey, value: '{"seq":0}' }] });
        bumps += 1;
      }
    };
    const bumpers = Array.from({ length: 3 }, bumper);
    const before = txns;
    const started = Date.now();
    const answer = vault
      .call('POST', '/v1/credentials', { body: { name: 'stalled', type: 'generic', value: 'v' } })
      .then((res) => res.status);
    const outcome = await Promise.race([
      answer,
      new Promise<'no answer'>((resolve) => setTimeout(() => resolve('no answer'), 8_000)),
    ]);
    const elapsed = Date.now() - started;
    const sent = txns - before;
    bumping = false;
    await Promise.all(bumpers);
    const late = await answer;
    expect(
      outcome,
      `while the turn key moved ${bumps} times, a write sent ${sent} transactions in ${elapsed} ms and never answered (it answered ${late} once the turn stopped moving)`,
    ).not.toBe('no answer');
    expect(sent, 'transactions a single write sent while the turn kept moving').toBeLessThan(200);
  }, 30_000);
});
