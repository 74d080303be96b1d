/**
 * Promise (docs/guide/cli.md, "What the scrubber catches"): the scrubber shared by `vault run`
 * and `run_with_credentials` replaces a value "as the password of an `Authorization: Basic`
 * header however short"; and src/lib/scrub.ts promises its stream scrubber "scrubs chunked
 * text without letting a value through when it is split across chunks".
 *
 * Attack: an agent token with only `lease` runs a script that builds a Basic header the usual
 * shell way, `printf 'Authorization: Basic '; printf 'deploy:%s' "$PW" | base64`. The two
 * writes come from different processes, so they reach `vault run` as two chunks (the test
 * sleeps between them to make that deterministic; a busy pipe does the same). The stream
 * scrubber holds back only tails that may start one of the value's fixed forms; a short
 * password has no base64 form of at least 8 characters, so it is found only by
 * `scrubBasicAuth`, whose regex needs "Basic " and the base64 in the same chunk. The first
 * chunk is released as is, the second ("ZGVwbG95OnE3eDI=") no longer follows "Basic ", and
 * the header goes out whole.
 *
 * Impact: `base64 -d` of the output gives the password to an agent that may not `reveal` it.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestVault, type TestVault } from '../support/test-vault.js';
import { runVault } from '../support/vault-dev.js';

const password = 'q7x2';

describe('vault run: a short Basic password split across output chunks', () => {
  let vault: TestVault;
  let work: string;
  let tokenFile: string;

  beforeAll(async () => {
    vault = await startTestVault();
    work = mkdtempSync(join(tmpdir(), 'vault-rt9b-'));
    const created = await vault.call('POST', '/v1/credentials', {
      body: { name: 'registry-pw', type: 'password', value: password },
    });
    expect(created.status).toBe(201);
    const policy = await vault.call('PUT', '/v1/policies/runner', {
      body: { rules: [{ credentials: ['registry-pw'], actions: ['list', 'read-metadata', 'lease'] }] },
    });
    expect(policy.status).toBe(200);
    const token = await vault.tokenFor({ type: 'agent', name: 'runner' }, ['runner']);
    tokenFile = join(work, 'agent.token');
    writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
  }, 60_000);

  afterAll(async () => {
    await vault?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('does not print the header in clear', async () => {
    const run = await runVault(
      [
        'run',
        '--credential',
        'registry-pw=PW',
        '--',
        'sh',
        '-c',
        `printf 'Authorization: Basic '; sleep 0.5; printf 'deploy:%s' "$PW" | base64`,
      ],
      {
        cwd: work,
        env: {
          PATH: process.env.PATH ?? '',
          HOME: work,
          XDG_CONFIG_HOME: join(work, 'config'),
          VAULT_ADDR: vault.url,
          VAULT_TENANT: vault.tenant,
          VAULT_TOKEN_FILE: tokenFile,
        },
      },
    );
    expect(run.code).toBe(0);
    const encoded = Buffer.from(`deploy:${password}`).toString('base64');
    // The same header written in one chunk is scrubbed; split in two it must be too.
    expect(run.stdout).not.toContain(encoded);
    expect(run.stdout).toBe('Authorization: Basic [REDACTED:PW]\n');
  }, 60_000);
});
