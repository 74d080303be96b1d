/**
 * The follower's delivery contract on a real embedded store: lines are written before the
 * cursor moves, so a crash between the two repeats lines on restart and never drops them; a
 * stream without a cursor (stdout) starts at the heads.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CursorStore, createAuditFollower, type StreamOutput } from '../../src/core/audit-follower.js';
import { createVaultCore, systemContext, type VaultCore } from '../../src/core/index.js';
import { keys, sealedPrefixes } from '../../src/core/keys.js';
import { createKeyring, type Keyring } from '../../src/crypto/keyring.js';
import { localRootKey } from '../../src/crypto/root-key.js';
import { silentLogger } from '../../src/lib/logger.js';
import { memoryCursorStore, writableStreamOutput } from '../../src/server/audit-stream.js';
import { openEmbeddedStore } from '../../src/store/embedded-store.js';
import type { Store } from '../../src/store/store.js';

const memoryOutput = () => {
  const lines: string[] = [];
  const output: StreamOutput = {
    write: async (batch) => {
      lines.push(...batch);
    },
    sync: async () => {},
    close: async () => {},
  };
  const seqs = () =>
    lines
      .map((line) => JSON.parse(line))
      .filter((l) => l.tenant === 'acme')
      .map((l) => l.seq as number);
  return { output, lines, seqs };
};

describe('the audit stream follower', () => {
  let dir: string;
  let store: Store;
  let core: VaultCore;
  let keyring: Keyring;
  const ctx = systemContext('acme', { type: 'human', name: 'tester' });
  const record = (n: number) =>
    Promise.all(
      Array.from({ length: n }, () =>
        core.committer.record(ctx, { action: 'test.event', resource: 'x', outcome: 'allowed' }),
      ),
    );

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vault-follower-'));
    store = await openEmbeddedStore({ path: dir });
    keyring = createKeyring({ store, roots: [localRootKey(randomBytes(32))], sealedPrefixes });
    core = createVaultCore({ store, keyring, config: { autoCreateTenants: true } });
    await core.tenants.ensure('acme', ctx);
  });
  afterAll(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('repeats, never drops, what was written when the cursor could not be saved', async () => {
    await record(5);
    const cursor = memoryCursorStore();
    const first = memoryOutput();
    let failSaves = true;
    const flaky: CursorStore = {
      load: () => cursor.load(),
      save: async (c) => {
        if (failSaves) throw new Error('disk full');
        await cursor.save(c);
      },
    };
    const a = createAuditFollower({
      store,
      output: first.output,
      cursor: flaky,
      logger: silentLogger,
      startAt: 'beginning',
    });
    await a.start();
    const written = first.seqs();
    expect(written.length).toBeGreaterThanOrEqual(5);
    expect(written).toEqual(written.map((_, i) => i + 1));
    await a.close();

    // "Restart": the cursor was never saved, so everything is written again, plus what came since.
    await record(3);
    failSaves = false;
    const second = memoryOutput();
    const b = createAuditFollower({
      store,
      output: second.output,
      cursor: flaky,
      logger: silentLogger,
      startAt: 'beginning',
    });
    await b.start();
    const all = second.seqs();
    expect(all[0]).toBe(1);
    expect(all).toEqual(all.map((_, i) => i + 1));
    await b.close();

    // With the cursor saved, a third run writes only what is new.
    await record(2);
    const third = memoryOutput();
    const c = createAuditFollower({
      store,
      output: third.output,
      cursor: flaky,
      logger: silentLogger,
      startAt: 'beginning',
    });
    await c.start();
    expect(third.seqs()).toEqual([all.at(-1)! + 1, all.at(-1)! + 2]);
    await c.close();
  });

  it('copies records whole: one with an unhashed field, of another tenant or not JSON is named malformed, never copied', async () => {
    const zeta = systemContext('zeta', { type: 'human', name: 'tester' });
    await core.tenants.ensure('zeta', zeta);
    for (let i = 0; i < 3; i++)
      await core.committer.record(zeta, { action: 'test.event', resource: 'x', outcome: 'allowed' });
    const at = async (seq: number) => JSON.parse((await store.get(keys.auditRecord('zeta', seq)))!.value);
    const put = (seq: number, value: string) =>
      store.txn({ success: [{ type: 'put', key: keys.auditRecord('zeta', seq), value }] });
    await put(2, JSON.stringify({ ...(await at(2)), comment: 'approved by the CISO' }));
    await put(3, JSON.stringify({ ...(await at(3)), tenant: 'acme' }));
    await put(4, '{"seq":4,');

    const out = memoryOutput();
    const follower = createAuditFollower({
      store,
      output: out.output,
      cursor: memoryCursorStore(),
      logger: silentLogger,
      startAt: 'beginning',
    });
    await follower.start();
    await follower.close();
    const zetaLines = out.lines
      .map((line) => JSON.parse(line))
      .filter((line) => line.tenant === 'zeta' || line.malformed?.tenant === 'zeta');
    const first = await at(1);
    expect(zetaLines[0]).toEqual(first);
    expect(zetaLines.slice(1).map((line) => line.malformed?.seq)).toEqual([2, 3, 4]);
    expect(zetaLines[1].malformed.reason).toMatch(/comment|unrecognized/i);
    expect(zetaLines[2].malformed.reason).toContain('tenant "acme"');
    expect(zetaLines[3].malformed.reason).toBe('not valid JSON');
    expect(out.lines.join('\n')).not.toContain('approved by the CISO');
  });

  it('waits for a slow output to drain before writing more (back-pressure), and loses nothing', async () => {
    const highWaterMark = 512;
    const received: string[] = [];
    const slow = new Writable({
      highWaterMark,
      write(chunk: Buffer, _encoding, done) {
        received.push(chunk.toString('utf8'));
        setTimeout(done, 100);
      },
    });
    const buffered: number[] = [];
    const output = writableStreamOutput(slow);
    const follower = createAuditFollower({
      store,
      output: {
        ...output,
        write: (lines) => {
          buffered.push(slow.writableLength);
          return output.write(lines);
        },
      },
      cursor: memoryCursorStore(),
      logger: silentLogger,
      startAt: 'heads',
    });
    await follower.start();
    // A core that hands its commits to the follower: each commit wakes it, so many small
    // writes meet a slow sink while commits go on.
    const streaming = createVaultCore({
      store,
      keyring,
      auditSink: follower,
      config: { autoCreateTenants: true },
    });
    for (let i = 0; i < 40; i++) {
      await streaming.committer.record(ctx, { action: 'test.event', resource: 'x', outcome: 'allowed' });
      // Requests arrive over time (the embedded store commits without yielding to I/O).
      await new Promise((done) => setTimeout(done, 10));
    }
    await follower.catchUp();
    await follower.close();
    // Every write started with the previous ones drained below the high-water mark.
    expect(Math.max(...buffered)).toBeLessThan(highWaterMark);
    const seqs = received
      .join('')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line))
      .filter((line) => line.tenant === 'acme')
      .map((line) => line.seq as number);
    expect(seqs).toHaveLength(40);
    expect(seqs).toEqual(seqs.map((_, i) => seqs[0]! + i));
  });

  it('with saveEveryMs, syncs the output once per cursor save, not per batch, and always before it', async () => {
    const events: string[] = [];
    const inner = memoryCursorStore();
    const follower = createAuditFollower({
      store,
      output: {
        write: async (batch) => {
          events.push(`write ${batch.length}`);
        },
        sync: async () => {
          events.push('sync');
        },
        close: async () => {},
      },
      cursor: {
        load: () => inner.load(),
        save: async (cursor) => {
          events.push('save');
          await inner.save(cursor);
        },
      },
      logger: silentLogger,
      startAt: 'heads',
      saveEveryMs: 60_000,
      pollMs: 60_000,
    });
    await follower.start();
    events.length = 0;
    // Commits in separate rounds, each handed to the follower as the committer hands it.
    for (let i = 0; i < 5; i++) {
      await record(1);
      const { seq } = JSON.parse((await store.get(keys.auditHead('acme')))!.value);
      follower.write(JSON.parse((await store.get(keys.auditRecord('acme', seq)))!.value));
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const written = () => events.reduce((n, e) => n + (e.startsWith('write') ? Number(e.slice(6)) : 0), 0);
    const deadline = Date.now() + 10_000;
    while (written() < 5 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(written()).toBe(5);
    expect(events.filter((e) => e.startsWith('write')).length).toBeGreaterThanOrEqual(2);
    expect(events).not.toContain('sync');
    expect(events).not.toContain('save');
    await follower.close();
    // Closing saves what is pending, and the lines reach the disk first.
    expect(events.slice(-2)).toEqual(['sync', 'save']);
  });

  it('writes lines again when the output could not sync them, never dropping one', async () => {
    await record(3);
    const out = memoryOutput();
    let failSyncs = 1;
    const cursor = memoryCursorStore();
    const follower = createAuditFollower({
      store,
      output: {
        ...out.output,
        sync: async () => {
          if (failSyncs-- > 0) throw new Error('EIO');
        },
      },
      cursor,
      logger: silentLogger,
      startAt: 'beginning',
    });
    // The first pass writes everything, fails to sync it, and writes it again on the next.
    await follower.start().catch(() => undefined);
    await record(2);
    await follower.catchUp();
    await follower.close();
    const seqs = out.seqs();
    const last = seqs.at(-1)!;
    // Everything up to the newest record was written after the failed sync (a repeat, in order).
    const repeatedFrom = seqs.lastIndexOf(1);
    expect(repeatedFrom).toBeGreaterThan(0);
    expect(seqs.slice(repeatedFrom)).toEqual(Array.from({ length: last }, (_, i) => i + 1));
    expect((await cursor.load())?.tenants.acme?.seq).toBe(last);
  });

  it('replays a long history in bounded batches, saving the cursor after each', async () => {
    await record(2100);
    const out = memoryOutput();
    const inner = memoryCursorStore();
    const saved: number[] = [];
    const follower = createAuditFollower({
      store,
      output: out.output,
      cursor: {
        load: () => inner.load(),
        save: async (cursor) => {
          saved.push(cursor.tenants.acme?.seq ?? 0);
          await inner.save(cursor);
        },
      },
      logger: silentLogger,
      startAt: 'beginning',
    });
    await follower.start();
    const seqs = out.seqs();
    expect(seqs.length).toBeGreaterThanOrEqual(2100);
    expect(seqs).toEqual(seqs.map((_, i) => i + 1));
    // More than one save while replaying, none further apart than a batch of 1,000 lines.
    expect(saved.length).toBeGreaterThanOrEqual(3);
    expect(out.lines.length / saved.length).toBeLessThanOrEqual(1000);
    await follower.close();
  }, 60_000);

  it('without a saved cursor and startAt heads, starts after the newest record', async () => {
    const out = memoryOutput();
    const follower = createAuditFollower({
      store,
      output: out.output,
      cursor: memoryCursorStore(),
      logger: silentLogger,
      startAt: 'heads',
    });
    await follower.start();
    expect(out.seqs()).toEqual([]);
    await record(1);
    await follower.catchUp();
    expect(out.seqs()).toHaveLength(1);
    await follower.close();
  });
});
