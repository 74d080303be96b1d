/**
 * The API in-process on a store the test opens and closes itself, with a root key that
 * survives restarts: tamper tests stop it, edit the store as an attacker with write access
 * (but without the root key) would, and start it again on the same data.
 */
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { createVaultCore, ROOT_POLICY, systemContext, type VaultCore } from '../../src/core/index.js';
import { sealedPrefixes } from '../../src/core/keys.js';
import { createKeyring } from '../../src/crypto/keyring.js';
import { localRootKey } from '../../src/crypto/root-key.js';
import { silentLogger } from '../../src/lib/logger.js';
import { createApp } from '../../src/server/app.js';
import type { Store } from '../../src/store/store.js';

export interface RunningVault {
  url: string;
  core: VaultCore;
  call(
    method: string,
    path: string,
    token: string,
    body?: unknown,
    tenant?: string,
    // biome-ignore lint/suspicious/noExplicitAny: tests assert on JSON of every shape
  ): Promise<{ status: number; body: any }>;
  close(): Promise<void>;
}

export async function runVault(store: Store, rootKey: Buffer): Promise<RunningVault> {
  const keyring = createKeyring({
    store,
    roots: [localRootKey(rootKey)],
    sealedPrefixes,
    logger: silentLogger,
  });
  const core = createVaultCore({ store, keyring, logger: silentLogger, config: { autoCreateTenants: true } });
  const { app } = createApp({
    core,
    keyring,
    logger: silentLogger,
    config: { authFailuresPerMinute: 10_000 },
  });
  const server: Server = createServer(app);
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    core,
    async call(method, path, token, body, tenant) {
      const headers: Record<string, string> = { authorization: `Bearer ${token}` };
      if (tenant) headers['x-vault-tenant'] = tenant;
      if (body !== undefined) headers['content-type'] = 'application/json';
      const res = await fetch(`${url}${path}`, {
        method,
        headers,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      const text = await res.text();
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = text;
      }
      return { status: res.status, body: parsed };
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((done) => server.close(() => done()));
    },
  };
}

/** A system root token for `tenant`, minted through the core (as `vault operator root-token` does). */
export async function mintRootToken(core: VaultCore, tenant: string): Promise<string> {
  const identity = { type: 'human' as const, name: 'auditor' };
  const ctx = systemContext(tenant, identity);
  await core.tenants.ensure(tenant, ctx);
  const minted = await core.tokens.mint(ctx, tenant, {
    identity,
    policies: [ROOT_POLICY],
    ttlMs: 24 * 3_600_000,
    system: true,
  });
  return minted.token;
}

const vaultBin = resolve(import.meta.dirname, '../../bin/vault.js');

/** Runs the `vault` CLI as users do; resolves with its exit code and output. */
export function runCli(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [vaultBin, ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.once('exit', (code) => done({ code, stdout, stderr }));
  });
}
