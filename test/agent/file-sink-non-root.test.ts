/**
 * The file sink as it runs in a pod: as the agent's non-root uid with no capabilities, on a
 * tmpfs (/dev/shm) directory shaped like an emptyDir. Files are 0400, which the owner itself
 * may not open for writing; the wipe must still zero and remove them.
 */
import { closeSync, openSync, readdirSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentUid, canSwitchUser, podVolume, runAs } from '../support/as-user.js';

const ops = fileURLToPath(new URL('../support/as-user-ops.ts', import.meta.url));
const agent = { uid: agentUid, gid: agentUid };
let dir: string;

const sinkAsAgent = async (op: 'sinkWrite' | 'sinkWipe', ...args: unknown[]) => {
  const run = await runAs(agent, ops, op, [dir, ...args]);
  if (run.code !== 0) throw new Error(`the sink crashed as uid ${agentUid}:\n${run.stderr}`);
  return JSON.parse(run.stdout) as { ok: boolean; value?: unknown; error?: string };
};

/** Zero bytes in an inode the test holds open (root may read anything). */
const contentOf = (fd: number, length: number) => {
  const buffer = Buffer.alloc(length);
  readSync(fd, buffer, 0, length, 0);
  return buffer;
};

describe.runIf(canSwitchUser())('the file sink as a non-root agent (uid 65532, no capabilities)', () => {
  beforeAll(() => {
    dir = podVolume();
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('writes 0400 files it owns, on tmpfs', async () => {
    expect(await sinkAsAgent('sinkWrite', 'a.key', 'sk_live_nonroot_a', 0o400)).toEqual({ ok: true });
    const stat = statSync(join(dir, 'a.key'));
    expect([stat.uid, stat.gid, stat.mode & 0o777]).toEqual([agentUid, agentUid, 0o400]);
  });

  it('wipes a 0400 file: zeroed in place, then unlinked', async () => {
    await sinkAsAgent('sinkWrite', 'doomed.key', 'sk_live_nonroot_doomed', 0o400);
    const fd = openSync(join(dir, 'doomed.key'), 'r');
    try {
      expect(await sinkAsAgent('sinkWipe', 'doomed.key')).toEqual({ ok: true, value: true });
      expect(readdirSync(dir)).not.toContain('doomed.key');
      expect(contentOf(fd, 22).equals(Buffer.alloc(22))).toBe(true);
    } finally {
      closeSync(fd);
    }
  });

  it('zeroes the 0400 file it replaces', async () => {
    await sinkAsAgent('sinkWrite', 'rotated.key', 'first-secret', 0o400);
    const fd = openSync(join(dir, 'rotated.key'), 'r');
    try {
      await sinkAsAgent('sinkWrite', 'rotated.key', 'second', 0o400);
      expect(contentOf(fd, 12).equals(Buffer.alloc(12))).toBe(true);
    } finally {
      closeSync(fd);
    }
    const stat = statSync(join(dir, 'rotated.key'));
    expect(stat.mode & 0o777).toBe(0o400);
  });

  it('still removes a file it may not overwrite (another owner), without failing', async () => {
    const foreign = join(dir, 'foreign.key');
    writeFileSync(foreign, 'planted-by-root', { mode: 0o400 });
    expect(await sinkAsAgent('sinkWipe', 'foreign.key')).toEqual({ ok: true, value: true });
    expect(readdirSync(dir)).not.toContain('foreign.key');
  });
});
