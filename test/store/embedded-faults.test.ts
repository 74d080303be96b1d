/**
 * The embedded store's durability and exclusivity: a process killed with SIGKILL in the
 * middle of a burst loses no acknowledged transaction, the revision history stays gap-free,
 * a data directory can be opened by one process at a time, and files are private.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isVaultError } from '../../src/lib/errors.js';
import { embeddedStoreFile, openEmbeddedStore } from '../../src/store/embedded-store.js';
import { WatchCompactedError } from '../../src/store/errors.js';
import type { Store, WatchEvent } from '../../src/store/store.js';
import { eventually } from './contract.js';

const writerScript = fileURLToPath(new URL('./fixtures/embedded-writer.ts', import.meta.url));

let base: string;
let dir: string;

beforeEach(() => {
  base = mkdtempSync(join(tmpdir(), 'vault-embedded-'));
  dir = join(base, 'data');
});

afterEach(() => {
  rmSync(base, { recursive: true, force: true });
});

/** Starts the writer child; resolves once it has acknowledged `count` transactions. */
function startWriter(count: number, mode: 'sequential' | 'batched' = 'sequential') {
  const child = spawn(process.execPath, ['--import', 'tsx', writerScript, dir, mode], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const acknowledged: Array<{ i: number; revision: number }> = [];
  let stderr = '';
  let buffered = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  child.stdout.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    const lines = buffered.split('\n');
    buffered = lines.pop()!;
    for (const line of lines) {
      const match = /^(\d+) (\d+)$/.exec(line);
      if (match) acknowledged.push({ i: Number(match[1]), revision: Number(match[2]) });
    }
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const reached = new Promise<void>((resolve, reject) => {
    const onData = () => {
      if (acknowledged.length >= count) {
        child.stdout.off('data', onData);
        resolve();
      }
    };
    child.stdout.on('data', onData);
    child.once('exit', (code, signal) => reject(new Error(`writer exited (${code ?? signal}):\n${stderr}`)));
  });
  return { child, acknowledged, reached, exited };
}

/**
 * Starts a writer, SIGKILLs it once it has acknowledged `count` transactions, and returns
 * what it acknowledged before dying.
 */
async function killWriterAfter(...args: Parameters<typeof startWriter>) {
  const writer = startWriter(...args);
  try {
    await writer.reached;
  } finally {
    writer.child.kill('SIGKILL');
    await writer.exited;
  }
  return { writer, acked: [...writer.acknowledged] };
}

describe('embedded store durability', () => {
  it('keeps every acknowledged transaction across SIGKILL, with a gap-free history', {
    timeout: 120_000,
  }, async () => {
    const { writer, acked } = await killWriterAfter(300);
    expect(acked.length).toBeGreaterThanOrEqual(300);

    const store = await openEmbeddedStore({ path: dir });
    try {
      for (const { i, revision } of acked) {
        const kv = await store.get(`burst/${String(i).padStart(6, '0')}`);
        expect(kv).toMatchObject({ value: `value-${i}`, modRevision: revision, createRevision: revision });
      }
      // Acknowledged revisions are consecutive: one revision per transaction, none lost.
      expect(acked.map((a) => a.revision)).toEqual(acked.map((_, n) => acked[0]!.revision + n));
      // At most one more transaction committed after the last line the parent read.
      const counter = await store.get('burst-counter');
      const committed = Number(counter!.value);
      expect(committed - acked.length).toBeGreaterThanOrEqual(0);
      expect(committed - acked.length).toBeLessThanOrEqual(writer.acknowledged.length - acked.length + 1);
      const { revision } = await store.range('burst/', { limit: 1 });
      expect(revision).toBe(counter!.modRevision);
      expect((await store.range('burst/')).kvs).toHaveLength(committed);

      // The change log replays every revision from the first, once, in order.
      const events: WatchEvent[] = [];
      const watcher = await store.watch('burst/', acked[0]!.revision, (event) => events.push(event));
      await eventually(() => expect(events).toHaveLength(committed));
      await watcher.close();
      expect(events.map((e) => e.modRevision)).toEqual(events.map((_, n) => acked[0]!.revision + n));

      // And writing continues from where the killed process stopped.
      const next = await store.txn({ success: [{ type: 'put', key: 'after-crash', value: '1' }] });
      expect(next.revision).toBe(revision + 1);
    } finally {
      await store.close();
    }
  });

  it('keeps every acknowledged transaction of a shared commit across SIGKILL', {
    timeout: 120_000,
  }, async () => {
    const { acked } = await killWriterAfter(400, 'batched');
    const store = await openEmbeddedStore({ path: dir });
    try {
      for (const { i, revision } of acked) {
        expect(await store.get(`burst/${String(i).padStart(6, '0')}`)).toMatchObject({
          value: `value-${i}`,
          modRevision: revision,
        });
      }
      // Commits are all or nothing, in order: what is stored is burst/0 .. burst/n-1, each at
      // its own revision, and the change log replays them without a gap.
      const stored = (await store.range('burst/')).kvs;
      expect(stored.length).toBeGreaterThanOrEqual(acked.length);
      expect(stored.map((kv) => kv.key)).toEqual(stored.map((_, i) => `burst/${String(i).padStart(6, '0')}`));
      const revisions = stored.map((kv) => kv.modRevision).sort((a, b) => a - b);
      expect(revisions).toEqual(revisions.map((_, n) => revisions[0]! + n));
      const events: WatchEvent[] = [];
      const watcher = await store.watch('burst/', revisions[0]!, (event) => events.push(event));
      await eventually(() => expect(events).toHaveLength(stored.length));
      await watcher.close();
    } finally {
      await store.close();
    }
  });

  it('keeps data and the revision counter across close and reopen', async () => {
    let store = await openEmbeddedStore({ path: dir });
    const { revision } = await store.txn({ success: [{ type: 'put', key: 'a', value: '1' }] });
    await store.close();
    store = await openEmbeddedStore({ path: dir });
    try {
      expect(await store.get('a')).toMatchObject({ value: '1', modRevision: revision });
      expect((await store.txn({ success: [{ type: 'put', key: 'b', value: '2' }] })).revision).toBe(
        revision + 1,
      );
    } finally {
      await store.close();
    }
  });
});

describe('embedded store exclusivity and permissions', () => {
  it('refuses a second open of a data directory in use, in this process or another', {
    timeout: 60_000,
  }, async () => {
    const store = await openEmbeddedStore({ path: dir });
    try {
      const err = await openEmbeddedStore({ path: dir }).catch((e: unknown) => e);
      expect(isVaultError(err) && err.code).toBe('conflict');
      expect((err as Error).message).toMatch(/is in use by another vault process/);
      expect((err as Error).message).toContain(dir);

      const writer = startWriter(1);
      await expect(writer.reached).rejects.toThrow(/is in use by another vault process/);
    } finally {
      await store.close();
    }
    // Once closed, it opens again.
    const reopened = await openEmbeddedStore({ path: dir });
    await reopened.close();
  });

  it('creates the directory 0700 and the database files 0600', async () => {
    const store = await openEmbeddedStore({ path: dir });
    try {
      await store.txn({ success: [{ type: 'put', key: 'a', value: '1' }] });
      expect(statSync(dir).mode & 0o777).toBe(0o700);
      expect(statSync(join(dir, embeddedStoreFile)).mode & 0o777).toBe(0o600);
      expect(statSync(join(dir, `${embeddedStoreFile}-wal`)).mode & 0o777).toBe(0o600);
    } finally {
      await store.close();
    }
  });
});

describe('embedded store history', () => {
  let store: Store;

  afterEach(async () => {
    await store?.close();
  });

  it('compacts old history and fails a watch from a compacted revision clearly', async () => {
    store = await openEmbeddedStore({ path: dir, historyRevisions: 10 });
    const revisions: number[] = [];
    for (let i = 0; i < 40; i++) {
      revisions.push(
        (await store.txn({ success: [{ type: 'put', key: `h/${i}`, value: String(i) }] })).revision,
      );
    }
    const err = await store.watch('h/', revisions[0]!, () => {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WatchCompactedError);
    expect((err as WatchCompactedError).compactRevision).toBeGreaterThanOrEqual(revisions[0]!);
    expect((err as Error).message).toMatch(/re-read the current state and watch from its revision \+ 1/);

    // The last 10 revisions are always kept.
    const events: WatchEvent[] = [];
    const watcher = await store.watch('h/', revisions.at(-10)!, (event) => events.push(event));
    await eventually(() => expect(events.map((e) => e.modRevision)).toEqual(revisions.slice(-10)));
    await watcher.close();
  });

  it('a throwing watch callback does not stop later events', async () => {
    store = await openEmbeddedStore({ path: dir });
    const seen: string[] = [];
    await store.watch('', 0, (event) => {
      seen.push(event.key);
      if (event.key === 'boom') throw new Error('callback bug');
    });
    await store.txn({ success: [{ type: 'put', key: 'boom', value: '1' }] });
    await store.txn({ success: [{ type: 'put', key: 'fine', value: '2' }] });
    await eventually(() => expect(seen).toEqual(['boom', 'fine']));
  });
});
