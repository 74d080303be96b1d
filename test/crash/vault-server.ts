/**
 * `vault server` as a child process (the CLI, as operators run it), and a bootstrap through
 * the core against the same store before it starts: `vault server` prints no token, so the
 * test mints a system root token (and creates a tenant and a credential) in-process first.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { systemContext } from '../../src/core/index.js';
import { ROOT_POLICY } from '../../src/core/policy-engine.js';
import { silentLogger } from '../../src/lib/logger.js';
import { parseServerConfig } from '../../src/server/config.js';
import { openVault } from '../../src/server/vault-process.js';

export const repoRoot = resolve(import.meta.dirname, '../..');
const vaultBin = resolve(repoRoot, 'bin/vault.js');

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

export interface Bootstrap {
  tenant: string;
  token: string;
  credentialName: string;
}

/** Creates `tenant`, one api-key credential and a system root token, then closes the store. */
export async function bootstrap(configInput: Record<string, unknown>, tenant: string): Promise<Bootstrap> {
  const config = parseServerConfig({ listen: '127.0.0.1:0', auditLog: 'none', ...configInput });
  const { store, core } = await openVault(config, silentLogger);
  try {
    const identity = { type: 'human' as const, name: 'crash-test' };
    const ctx = systemContext(tenant, identity);
    await core.tenants.ensure(tenant, ctx);
    const credentialName = 'db-password';
    await core.credentials.create(ctx, {
      name: credentialName,
      type: 'password',
      value: 'crash-test-value-0f3c',
      metadata: { purpose: 'crash-test' },
    });
    const minted = await core.tokens.mint(ctx, tenant, {
      identity,
      policies: [ROOT_POLICY],
      ttlMs: 3_600_000,
      system: true,
    });
    return { tenant, token: minted.token, credentialName };
  } finally {
    await store.close();
  }
}

export interface ServerProcess {
  url: string;
  pid: number;
  output(): string;
  /** Everything it wrote to stdout (the audit stream with --audit-log stdout), whole. */
  stdout(): string;
  /** SIGKILL, as a crash would; resolves once the process is gone. */
  kill(): Promise<void>;
  /** SIGTERM and wait (SIGKILL after 10 s). */
  stop(): Promise<void>;
}

/**
 * Starts `vault server ARGS --listen 127.0.0.1:0` and waits for the URL it logs; `nodeArgs`
 * go to node itself (a benchmark's `--cpu-prof`), and `entry` replaces the CLI (with its
 * own leading arguments, e.g. a launcher of several servers on one port).
 */
export async function startServer(
  args: string[],
  timeoutMs = 60_000,
  nodeArgs: string[] = [],
  entry: string[] = [vaultBin],
): Promise<ServerProcess> {
  const child = spawn(
    process.execPath,
    [...nodeArgs, ...entry, 'server', ...args, '--listen', '127.0.0.1:0', '--log-level', 'info'],
    { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, VAULT_ROOT_KEY: '' } },
  );
  live.add(child);
  let output = '';
  let stdout = '';
  const collect = (chunk: string) => {
    output = (output + chunk).slice(-20_000);
  };
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    collect(chunk);
  });
  child.stderr.setEncoding('utf8').on('data', collect);
  const exited = new Promise<void>((done) =>
    child.once('exit', () => {
      live.delete(child);
      done();
    }),
  );
  const url = await new Promise<string>((done, fail) => {
    const timer = setTimeout(
      () => fail(new Error(`vault server did not start in time:\n${output}`)),
      timeoutMs,
    );
    const check = () => {
      const found = /"url":"(https?:\/\/127\.0\.0\.1:\d+)"/.exec(output)?.[1];
      if (found) {
        clearTimeout(timer);
        done(found);
      }
    };
    child.stderr.on('data', check);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      fail(new Error(`vault server exited (${code ?? signal}) while starting:\n${output}`));
    });
  });
  const halt = async (signal: NodeJS.Signals) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };
  return {
    url,
    pid: child.pid!,
    output: () => output,
    stdout: () => stdout,
    kill: () => halt('SIGKILL'),
    stop: () => halt('SIGTERM'),
  };
}

/** `vault operator root-token --tenant TENANT STORE_ARGS`, as an operator runs it while no server does. */
export function rootTokenCli(
  storeArgs: string[],
  tenant: string,
): Promise<{ code: number | null; token: string; stderr: string }> {
  return new Promise((done) => {
    const child = spawn(
      process.execPath,
      [vaultBin, 'operator', 'root-token', '--tenant', tenant, ...storeArgs],
      {
        cwd: repoRoot,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, VAULT_ROOT_KEY: '' },
      },
    );
    live.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.once('exit', (code) => {
      live.delete(child);
      done({ code, token: stdout.trim(), stderr });
    });
  });
}
