import { execFileSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFileSink, render } from '../../src/agent/file-sink.js';

/**
 * A real tmpfs: a directory in /dev/shm (already a tmpfs on Linux; the tests mount nothing on
 * the host), else a temporary directory.
 */
let dir: string;
const shm = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();

/** The filesystem type of the mount holding `path` (the longest mount point that prefixes it). */
function fsTypeOf(path: string): string | undefined {
  const mounts = readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((line) => line.split(' '))
    .filter(
      (fields) =>
        fields.length > 2 && (path === fields[1] || path.startsWith(`${fields[1]}/`) || fields[1] === '/'),
    );
  mounts.sort((a, b) => (b[1]?.length ?? 0) - (a[1]?.length ?? 0));
  return mounts[0]?.[2];
}

beforeAll(() => {
  dir = mkdtempSync(join(shm, 'vault-agent-sink-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('the file sink', () => {
  it.skipIf(shm !== '/dev/shm')('runs on tmpfs', () => {
    expect(fsTypeOf(dir)).toBe('tmpfs');
  });

  it('writes with the exact mode (0400 default, umask or not) and the process owner', async () => {
    const sink = createFileSink(dir);
    const previous = process.umask(0o077);
    try {
      await sink.write('a.txt', 'alpha', 0o400);
      await sink.write('b.txt', 'beta', 0o644);
    } finally {
      process.umask(previous);
    }
    const a = statSync(join(dir, 'a.txt'));
    expect(a.mode & 0o777).toBe(0o400);
    expect(statSync(join(dir, 'b.txt')).mode & 0o777).toBe(0o644);
    expect([a.uid, a.gid]).toEqual([process.getuid?.(), process.getgid?.()]);
    expect(readFileSync(join(dir, 'a.txt'), 'utf8')).toBe('alpha');
    expect(readdirSync(dir).filter((n) => n.includes('.tmp-'))).toEqual([]);
  });

  it('replaces a file atomically: readers see the old or the new content, never a mix', async () => {
    const sink = createFileSink(dir);
    const old = 'o'.repeat(256 * 1024);
    const fresh = 'n'.repeat(256 * 1024);
    await sink.write('swap', old, 0o400);
    let stop = false;
    const seen = new Set<string>();
    const reader = (async () => {
      while (!stop) {
        const text = readFileSync(join(dir, 'swap'), 'utf8');
        seen.add(text === old ? 'old' : text === fresh ? 'new' : `partial(${text.length})`);
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    for (let i = 0; i < 20; i++) await sink.write('swap', i % 2 ? old : fresh, 0o400);
    stop = true;
    await reader;
    expect([...seen].filter((s) => s.startsWith('partial'))).toEqual([]);
  });

  it('zeroes the content of a file it replaces, in the old inode', async () => {
    const sink = createFileSink(dir);
    await sink.write('rotated', 'first-secret', 0o600);
    const fd = openSync(join(dir, 'rotated'), 'r');
    try {
      await sink.write('rotated', 'second', 0o600);
      const buffer = Buffer.alloc(12);
      readSync(fd, buffer, 0, 12, 0);
      expect(buffer.equals(Buffer.alloc(12))).toBe(true);
      expect(readFileSync(join(dir, 'rotated'), 'utf8')).toBe('second');
    } finally {
      closeSync(fd);
    }
  });

  it('wipes: the content is overwritten with zeros before the file is unlinked', async () => {
    const sink = createFileSink(dir);
    await sink.write('doomed', 'sk_live_canary', 0o400);
    const fd = openSync(join(dir, 'doomed'), 'r');
    try {
      expect(await sink.wipe('doomed')).toBe(true);
      expect(readdirSync(dir)).not.toContain('doomed');
      const buffer = Buffer.alloc(14);
      readSync(fd, buffer, 0, 14, 0);
      expect(buffer.equals(Buffer.alloc(14))).toBe(true);
    } finally {
      closeSync(fd);
    }
    expect(await sink.wipe('doomed')).toBe(false);
  });

  it('refuses names that would leave the directory', async () => {
    const sink = createFileSink(dir);
    await expect(sink.write('../escape', 'x', 0o400)).rejects.toThrow('is not a file name');
    await expect(sink.wipe('..')).rejects.toThrow('is not a file name');
  });

  it('fails on a directory it cannot write, leaving no temporary file', async () => {
    const sink = createFileSink(join(dir, 'missing'));
    await expect(sink.write('x', 'y', 0o400)).rejects.toThrow(/ENOENT/);
    writeFileSync(join(dir, 'plain'), '');
    await expect(createFileSink(join(dir, 'plain')).write('x', 'y', 0o400)).rejects.toThrow(/ENOTDIR/);
  });
});

describe('file formats', () => {
  it('writes raw values as they are', () => {
    expect(render('raw', 'X', 'line1\nline2')).toBe('line1\nline2');
  });
  it('quotes env values so that a shell reads them back literally, quotes and $ included', () => {
    const value = `it's $HOME "quoted" \`cmd\``;
    const line = render('env', 'SECRET', value);
    expect(line).toBe(`SECRET='it'\\''s $HOME "quoted" \`cmd\`'\n`);
    const back = execFileSync('sh', ['-c', `${line.trim()}; printf %s "$SECRET"`], { encoding: 'utf8' });
    expect(back).toBe(value);
  });
  it('writes json as an object keyed by the variable name', () => {
    expect(JSON.parse(render('json', 'DB_URL', 'postgres://u:p@h/db'))).toEqual({
      DB_URL: 'postgres://u:p@h/db',
    });
  });
});
