/**
 * Starts a real `vault dev` (the CLI, as users run it) on a free port with a temporary data
 * directory, and parses the three `export` lines it prints. Every process started here is
 * killed, and every directory removed, when the test process exits.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export interface VaultDev {
  /** `http://127.0.0.1:PORT` */
  addr: string;
  /** The dev root token: a system admin token. */
  token: string;
  /** The dev tenant (`dev`). */
  tenant: string;
  dataDir: string;
  /** Everything the server wrote to stderr so far (for failure messages). */
  stderr(): string;
  /** SIGTERM, wait for exit, remove the data directory. */
  /** Stops it; the data directory is removed unless `keepData` (then it goes at process exit). */
  stop(options?: { keepData?: boolean }): Promise<void>;
}

/** A JSON call to a `vault dev` as its root token, in its tenant: `api('POST', '/credentials', body)`. */
export const devApi =
  (vault: Pick<VaultDev, 'addr' | 'token' | 'tenant'>) =>
  async (
    method: string,
    path: string,
    body?: unknown,
    // biome-ignore lint/suspicious/noExplicitAny: tests assert on response JSON of every shape
  ): Promise<{ status: number; body: any; text: string }> => {
    const res = await fetch(`${vault.addr}/v1${path}`, {
      method,
      headers: {
        authorization: `Bearer ${vault.token}`,
        'x-vault-tenant': vault.tenant,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined, text };
  };

export const repoRoot = resolve(import.meta.dirname, '../..');
export const vaultBin = join(repoRoot, 'bin/vault.js');

const live = new Set<ChildProcess>();
const dirs = new Set<string>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

export async function startVaultDev(
  options: { startTimeoutMs?: number; dataDir?: string } = {},
): Promise<VaultDev> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'vault-dev-test-'));
  dirs.add(dataDir);
  const child = spawn(process.execPath, [vaultBin, 'dev', '--data-dir', dataDir, '--port', '0'], {
    cwd: repoRoot,
    env: { ...process.env, VAULT_TOKEN: '', VAULT_ADDR: '', VAULT_TENANT: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  let stdout = '';
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<void>((done) => child.once('exit', () => done()));

  const exports = await new Promise<Record<string, string>>((done, fail) => {
    const timer = setTimeout(
      () => fail(new Error(`vault dev did not print its export lines in time; stderr:\n${stderr}`)),
      options.startTimeoutMs ?? 60_000,
    );
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      const found: Record<string, string> = {};
      for (const match of stdout.matchAll(/^export (VAULT_[A-Z]+)=(.*)$/gm)) {
        found[match[1]!] = unquote(match[2]!);
      }
      if (found.VAULT_ADDR && found.VAULT_TOKEN && found.VAULT_TENANT) {
        clearTimeout(timer);
        done(found);
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      fail(new Error(`vault dev exited (${code ?? signal}) before it was ready; stderr:\n${stderr}`));
    });
  });

  return {
    addr: exports.VAULT_ADDR!,
    token: exports.VAULT_TOKEN!,
    tenant: exports.VAULT_TENANT!,
    dataDir,
    stderr: () => stderr,
    async stop(stopOptions: { keepData?: boolean } = {}) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
      live.delete(child);
      if (stopOptions.keepData) return;
      rmSync(dataDir, { recursive: true, force: true });
      dirs.delete(dataDir);
    },
  };
}

/** `export X='a b'` or `export X="a"` or `export X=a`. */
function unquote(text: string): string {
  const trimmed = text.trim();
  if (trimmed.length >= 2 && (trimmed[0] === "'" || trimmed[0] === '"') && trimmed.at(-1) === trimmed[0]) {
    return trimmed.slice(1, -1);
  }
  return trimmed;
}

export interface VaultRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the `vault` CLI once with exactly `env` (nothing inherited), `input` on its stdin. */
export function runVault(
  args: string[],
  options: { cwd: string; env: Record<string, string>; input?: string },
): Promise<VaultRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [vaultBin, ...args], {
      cwd: options.cwd,
      env: options.env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(options.input ?? '');
  });
}
