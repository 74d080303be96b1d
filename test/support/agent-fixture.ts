import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect } from 'vitest';
import type { LeaseLoop } from '../../src/agent/lease-loop.js';
import { Vault } from '../../src/sdk/index.js';
import { type HangingProxy, startHangingProxy } from './hanging-proxy.js';
import { startTestVault, type TestVault } from './test-vault.js';

export interface AgentFixture {
  vault: TestVault;
  /** Proxies in front of the vault, in the order asked (their answers can be held or cut). */
  proxies: HangingProxy[];
  /** The directory the agent writes its files to. */
  dir: string;
  /** The lease loop under test: stopped (with `stopOptions`) after the tests. */
  loop: LeaseLoop | undefined;
  /** An SDK client with the root token, straight to the vault or through `addr`. */
  connect(addr: string, timeoutMs: number): Promise<Vault>;
  /** The address of proxy `i`. */
  through(i: number): string;
}

/**
 * The set-up the agent's lease-loop tests share, registered as this describe's beforeAll and
 * afterAll: a vault with one credential, `proxies` hanging proxies in front of it, and a
 * temporary directory for the files. The fields are filled in before the first test.
 */
export function agentFixture(options: {
  credential: { name: string; value: string };
  proxies?: number;
  stopOptions?: { revoke?: boolean };
}): AgentFixture {
  const fixture = {
    proxies: [] as HangingProxy[],
    loop: undefined,
    connect(addr: string, timeoutMs: number) {
      return Vault.connect({ addr, token: fixture.vault.rootToken, tenant: fixture.vault.tenant, timeoutMs });
    },
    through(i: number) {
      return `http://127.0.0.1:${fixture.proxies[i]!.port}`;
    },
  } as unknown as AgentFixture;

  beforeAll(async () => {
    fixture.vault = await startTestVault();
    const created = await fixture.vault.call('POST', '/v1/credentials', {
      body: { name: options.credential.name, type: 'password', value: options.credential.value },
    });
    expect(created.status, created.text).toBe(201);
    const target = { host: '127.0.0.1', port: Number(new URL(fixture.vault.url).port) };
    for (let i = 0; i < (options.proxies ?? 1); i++) fixture.proxies.push(await startHangingProxy(target));
    fixture.dir = mkdtempSync(join(tmpdir(), 'vault-agent-'));
  });
  afterAll(async () => {
    await fixture.loop?.stop(options.stopOptions).catch(() => {});
    for (const proxy of fixture.proxies) await proxy.close();
    await fixture.vault?.close();
    if (fixture.dir) rmSync(fixture.dir, { recursive: true, force: true });
  });
  return fixture;
}
