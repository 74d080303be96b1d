/**
 * Red team, session 9b: the scrubber `vault run` and `run_with_credentials` share, against
 * the real tools' output, run by an agent token with only `lease` (no `reveal`).
 *
 * 1. Promise (docs/guide/cli.md, "What the scrubber catches"): values are replaced when
 *    "shell-quoted (bash `printf %q` in both its backslash and `$'...'` forms ...)". The
 *    scrubber modelled bash's backslash quoting wrongly: bash escapes "," and "^" (and "~"
 *    after "=" or ":"), and "#" only at the start of a word. For `Tr0ub4dor,horse-staple`,
 *    `p@ss word#42-xyz` or `k^3=~secret-value` the real `printf %q` output matched no form
 *    searched for and went out in clear.
 * 2. Promise: a value is replaced "as the password of an `Authorization: Basic` header however
 *    short", and the stream scrubber lets no value through "when it is split across chunks".
 *    A script building the header the usual shell way, `printf 'Authorization: Basic ';
 *    printf 'deploy:%s' "$PW" | base64`, writes it from two processes, so it arrives in two
 *    chunks (the test sleeps between them to make that deterministic). A short password has
 *    no base64 form long enough to be searched for, the Basic rule needed "Basic " and the
 *    base64 in one chunk, and the header went out whole.
 *
 * Impact: the output gives the value to an agent that may not `reveal` it.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestVault, type TestVault } from '../support/test-vault.js';
import { runVault } from '../support/vault-dev.js';

const quoted = ['Tr0ub4dor,horse-staple', 'p@ss word#42-xyz', 'k^3=~secret-value'];
const shortPassword = 'q7x2';

describe('vault run scrubs what real tools print', () => {
  let vault: TestVault;
  let work: string;
  let tokenFile: string;

  beforeAll(async () => {
    vault = await startTestVault();
    work = mkdtempSync(join(tmpdir(), 'vault-rt9b-'));
    const values: Array<[string, string]> = [
      ...quoted.map((value, index): [string, string] => [`db-pass-${index}`, value]),
      ['registry-pw', shortPassword],
    ];
    for (const [name, value] of values) {
      const created = await vault.call('POST', '/v1/credentials', {
        body: { name, type: 'password', value },
      });
      expect(created.status).toBe(201);
    }
    const policy = await vault.call('PUT', '/v1/policies/runner', {
      body: {
        rules: [{ credentials: ['db-pass-*', 'registry-pw'], actions: ['list', 'read-metadata', 'lease'] }],
      },
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

  const run = (credential: string, script: string[]) =>
    runVault(['run', '--credential', credential, '--', ...script], {
      cwd: work,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: work,
        XDG_CONFIG_HOME: join(work, 'config'),
        VAULT_ADDR: vault.url,
        VAULT_TENANT: vault.tenant,
        VAULT_TOKEN_FILE: tokenFile,
      },
    });

  it.each(quoted.map((value, index) => [index, value] as const))(
    'value %i does not come out of bash printf q-quoting',
    async (index, value) => {
      const result = await run(`db-pass-${index}=DB_PASS`, ['bash', '-c', 'printf "%q\\n" "$DB_PASS"']);
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      // What bash printed, decoded back: the output must not let anyone recover the value.
      expect(result.stdout.trim().replace(/\\(.)/g, '$1')).not.toBe(value);
      expect(result.stdout).toBe('[REDACTED:DB_PASS]\n');
    },
    60_000,
  );

  it('a short Basic password split across output chunks is not printed in clear', async () => {
    const result = await run('registry-pw=PW', [
      'sh',
      '-c',
      `printf 'Authorization: Basic '; sleep 0.5; printf 'deploy:%s' "$PW" | base64`,
    ]);
    expect(result.code).toBe(0);
    expect(result.stdout).not.toContain(Buffer.from(`deploy:${shortPassword}`).toString('base64'));
    expect(result.stdout).toBe('Authorization: Basic [REDACTED:PW]\n');
  }, 60_000);
});
