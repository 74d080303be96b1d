import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openEmbeddedStore } from '../../src/store/embedded-store.js';
import type { WatchEvent } from '../../src/store/store.js';
import { describeStoreContract, eventually } from './contract.js';

describeStoreContract('embedded', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vault-store-'));
  const store = await openEmbeddedStore({ path: join(dir, 'data') });
  return {
    store,
    async cleanup() {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

describe('embedded store: one SQLite commit per turn of the event loop', () => {
  const put = (key: string, value: string) => ({ type: 'put' as const, key, value });

  async function open() {
    const dir = mkdtempSync(join(tmpdir(), 'vault-store-'));
    const commits: number[] = [];
    const store = await openEmbeddedStore({ path: join(dir, 'data'), onCommit: (n) => commits.push(n) });
    return {
      store,
      commits,
      dir,
      async cleanup() {
        await store.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }

  it('commits the transactions submitted in one turn together, each as if alone, in order', async () => {
    const { store, commits, cleanup } = await open();
    try {
      const { revision: start } = await store.txn({ success: [put('other', 'x')] });
      commits.length = 0;
      const events: WatchEvent[] = [];
      const watcher = await store.watch('k/', start + 1, (event) => events.push(event));
      const results = await Promise.all([
        store.txn({ compare: [{ key: 'k/a', modRevision: 0 }], success: [put('k/a', '1')] }),
        // Sees the first one's write: its create-only compare fails, and it writes nothing.
        store.txn({ compare: [{ key: 'k/a', modRevision: 0 }], success: [put('k/a', '2')] }),
        store.txn({ success: [put('k/b', '3')] }),
        // Compares against the revision the first one got.
        store.txn({ compare: [{ key: 'k/a', modRevision: start + 1 }], success: [put('k/a', '4')] }),
      ]);
      expect(commits).toEqual([4]);
      expect(results).toEqual([
        { succeeded: true, revision: start + 1 },
        { succeeded: false, revision: start + 1 },
        { succeeded: true, revision: start + 2 },
        { succeeded: true, revision: start + 3 },
      ]);
      expect(await store.get('k/a')).toMatchObject({ value: '4', modRevision: start + 3, version: 2 });
      await eventually(() => expect(events).toHaveLength(3));
      expect(events.map((e) => [e.key, e.value, e.modRevision])).toEqual([
        ['k/a', '1', start + 1],
        ['k/b', '3', start + 2],
        ['k/a', '4', start + 3],
      ]);
      await watcher.close();

      // Submitted in separate turns, they commit separately.
      commits.length = 0;
      await store.txn({ success: [put('k/c', '5')] });
      await store.txn({ success: [put('k/d', '6')] });
      expect(commits).toEqual([1, 1]);
    } finally {
      await cleanup();
    }
  });

  it('commits what was submitted before close, and refuses what comes after', async () => {
    const { store, dir, cleanup } = await open();
    const pending = store.txn({ success: [put('late', '1')] });
    await store.close();
    await expect(pending).resolves.toMatchObject({ succeeded: true });
    await expect(store.txn({ success: [put('later', '1')] })).rejects.toThrow(/closed/);
    const reopened = await openEmbeddedStore({ path: join(dir, 'data') });
    try {
      expect(await reopened.get('late')).toMatchObject({ value: '1' });
    } finally {
      await reopened.close();
      await cleanup();
    }
  });
});
