/**
 * `vault dev` in scripts: `--export-file` appears only once the server answers and goes when
 * it stops; `--detach` returns once it is ready; `npm run dev` leaves no server behind when
 * npm is stopped or killed. Real processes, real ports.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot, vaultBin } from '../support/vault-dev.js';

const run = promisify(execFile);
const work = mkdtempSync(join(tmpdir(), 'vault-dev-background-'));
const started: number[] = [];

afterAll(() => {
  for (const pid of started) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  }
  rmSync(work, { recursive: true, force: true });
});

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function until(what: string, check: () => boolean, ms = 60_000) {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const pidOf = (envFile: string) => Number(/VAULT_DEV_PID=(\d+)/.exec(readFileSync(envFile, 'utf8'))![1]);
const env = { ...process.env, VAULT_ADDR: '', VAULT_TOKEN: '', VAULT_TENANT: '' };

/**
 * `vault dev --detach` in a new dir holding a vault.env left by an earlier run, with the file
 * named by `flag`; returns the file, the server's pid (to stop) and what the command printed.
 */
async function detachWithStaleFile(name: string, flag: '--export-file' | '--env-file') {
  const dir = join(work, name);
  const envFile = join(dir, 'vault.env');
  mkdirSync(dir);
  writeFileSync(envFile, 'export VAULT_ADDR=http://127.0.0.1:1\n');
  const detached = await run(
    process.execPath,
    [vaultBin, 'dev', '--port', '0', '--data-dir', join(dir, 'data'), flag, envFile, '--detach'],
    { cwd: repoRoot, env },
  );
  const pid = pidOf(envFile);
  started.push(pid);
  return { dir, envFile, pid, detached };
}

describe('vault dev --export-file / --detach', () => {
  it('--detach returns once the server answers; the file is complete, 0600, and goes when the server stops', async () => {
    const { dir, envFile, pid, detached } = await detachWithStaleFile('detach', '--export-file');
    expect(detached.stdout).toBe(readFileSync(envFile, 'utf8'));
    expect(statSync(envFile).mode & 0o777).toBe(0o600);
    // No sleep: the shell loads the file and the very next command reaches the server.
    const whoami = await run(
      'sh',
      ['-c', `. "${envFile}" && "${process.execPath}" "${vaultBin}" whoami --json`],
      {
        env,
      },
    );
    expect(JSON.parse(whoami.stdout).identity).toEqual({ type: 'human', name: 'dev-root' });
    // The same line again (a second quick start) reuses the running server.
    const again = await run(
      process.execPath,
      [vaultBin, 'dev', '--port', '0', '--data-dir', join(dir, 'data'), '--export-file', envFile, '--detach'],
      { cwd: repoRoot, env },
    );
    expect(again.stdout).toBe(detached.stdout);
    expect(again.stderr).toContain(`vault dev is already running (pid ${pid}`);
    process.kill(pid, 'SIGTERM');
    await until('the server to stop', () => !alive(pid));
    expect(existsSync(envFile)).toBe(false);
  }, 120_000);

  it('--env-file, the name users guess first, works as --export-file (a file left by an earlier run)', async () => {
    // Node 20 reads `--env-file` itself and exits if the file is missing; a stale file is
    // what a rerun finds.
    const { envFile, pid, detached } = await detachWithStaleFile('env-file', '--env-file');
    expect(detached.stdout).toBe(readFileSync(envFile, 'utf8'));
    expect(detached.stdout).not.toContain('127.0.0.1:1\n');
    process.kill(pid, 'SIGTERM');
    await until('the server to stop', () => !alive(pid));
    expect(existsSync(envFile)).toBe(false);
  }, 120_000);

  it('replaces a stale file only when ready, and --detach says why a server cannot start', async () => {
    const busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const port = (busy.address() as { port: number }).port;
    const envFile = join(work, 'busy.env');
    writeFileSync(envFile, 'export VAULT_ADDR=http://127.0.0.1:1\n');
    const failed = await run(
      process.execPath,
      [
        vaultBin,
        'dev',
        '--port',
        String(port),
        '--data-dir',
        join(work, 'busy'),
        '--export-file',
        envFile,
        '--detach',
      ],
      { cwd: repoRoot, env },
    ).catch((err: { code: number; stderr: string }) => err);
    busy.close();
    expect((failed as { code: number }).code).toBe(1);
    expect((failed as { stderr: string }).stderr).toMatch(/exited \(1\)[\s\S]*EADDRINUSE/);
    expect(existsSync(envFile)).toBe(false);
  }, 120_000);

  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    it(`npm run dev stopped with ${signal} leaves no server running`, async () => {
      const envFile = join(work, `npm-${signal}.env`);
      const npm = spawn(
        'npm',
        [
          'run',
          '--silent',
          'dev',
          '--',
          '--port',
          '0',
          '--data-dir',
          join(work, `npm-${signal}`),
          '--export-file',
          envFile,
        ],
        { cwd: repoRoot, env, stdio: 'ignore' },
      );
      await until('the export file', () => existsSync(envFile));
      const pid = pidOf(envFile);
      started.push(pid);
      npm.kill(signal);
      await until(`the server to stop after npm got ${signal}`, () => !alive(pid), 30_000);
      expect(existsSync(envFile)).toBe(false);
    }, 120_000);
  }
});
