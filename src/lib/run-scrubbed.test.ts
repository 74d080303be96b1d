import { describe, expect, it } from 'vitest';
import { runScrubbed } from './run-scrubbed.js';

const value = 'hunter2-super-secret-value';
const base = {
  env: { PATH: process.env.PATH ?? '/usr/bin:/bin', TOKEN: value },
  secrets: [{ name: 'TOKEN', value }],
};

describe('runScrubbed', () => {
  it('gives the command its secret and scrubs every form from stdout and stderr', async () => {
    const result = await runScrubbed({
      ...base,
      file: '/bin/sh',
      args: [
        '-c',
        'echo "raw=$TOKEN"; printf %s "$TOKEN" | base64; echo "err=$TOKEN" >&2; test "$TOKEN" = hunter2-super-secret-value',
      ],
    });
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toContain('raw=[REDACTED:TOKEN]');
    expect(result.stdout).not.toContain(value);
    expect(result.stdout).not.toContain(Buffer.from(value).toString('base64').slice(0, 12));
    expect(result.stderr).toBe('err=[REDACTED:TOKEN]\n');
  });

  it('returns the exit code and bounds the output it keeps', async () => {
    const result = await runScrubbed({
      ...base,
      file: '/bin/sh',
      args: ['-c', 'head -c 100000 /dev/zero | tr "\\0" x; exit 3'],
      maxOutputChars: 1000,
    });
    expect(result.exitCode).toBe(3);
    expect(result.stdout).toHaveLength(1000);
    expect(result.stdoutDropped).toBe(99_000);
  });

  it('kills a command (and what it started) that runs past its time limit', async () => {
    const result = await runScrubbed({
      ...base,
      file: '/bin/sh',
      args: ['-c', 'sleep 30 & sleep 30; echo never'],
      timeoutMs: 300,
      detached: true,
    });
    expect(result.timedOut).toBe(true);
    expect(result.exitCode).toBeNull();
    expect(result.stdout).toBe('');
    expect(result.durationMs).toBeLessThan(25_000);
  });

  it('rejects when the command does not exist', async () => {
    await expect(runScrubbed({ ...base, file: '/nonexistent/cmd', args: [] })).rejects.toThrow(/ENOENT/);
  });
});
