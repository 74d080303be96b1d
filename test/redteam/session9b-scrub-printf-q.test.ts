/**
 * Promise (docs/guide/cli.md, "What the scrubber catches"): "`vault run` and the MCP tool
 * `run_with_credentials` share one scrubber. It replaces each value with `[REDACTED:NAME]`
 * when it appears ... shell-quoted (bash `printf %q` in both its backslash and `$'...'`
 * forms ...). Each case is tested against the real tool's output."
 *
 * Attack: an agent token with only `lease` (no `reveal`) runs
 * `vault run --credential db-pass=DB_PASS -- bash -c 'printf "%q\n" "$DB_PASS"'` (the same
 * happens through `run_with_credentials`). The scrubber's model of bash's backslash quoting
 * (src/lib/scrub.ts, valueForms) is wrong: bash escapes "," and "^" (and "~" after "=" or
 * ":") which the scrubber leaves alone, and escapes "#" only at the start of a word, while the
 * scrubber's form escapes every "#". So for values such as `Tr0ub4dor,horse-staple`,
 * `p@ss word#42-xyz` or `k^3=~secret-value` the real `printf %q` output matches none of the
 * forms searched for and goes out in clear.
 *
 * Impact: an agent without `reveal` reads the credential value in the scrubbed output of a
 * quoting command the docs name as caught (an accidental disclosure, e.g. a script that logs
 * its arguments with `printf %q`), breaking "an agent without reveal never sees a value".
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestVault, type TestVault } from '../support/test-vault.js';
import { runVault } from '../support/vault-dev.js';

const values = ['Tr0ub4dor,horse-staple', 'p@ss word#42-xyz', 'k^3=~secret-value'];

describe('vault run scrubs bash printf %q output', () => {
  let vault: TestVault;
  let work: string;
  let tokenFile: string;

  beforeAll(async () => {
    vault = await startTestVault();
    work = mkdtempSync(join(tmpdir(), 'vault-rt9b-'));
    for (const [index, value] of values.entries()) {
      const created = await vault.call('POST', '/v1/credentials', {
        body: { name: `db-pass-${index}`, type: 'password', value },
      });
      expect(created.status).toBe(201);
    }
    const policy = await vault.call('PUT', '/v1/policies/runner', {
      body: { rules: [{ credentials: ['db-pass-*'], actions: ['list', 'read-metadata', 'lease'] }] },
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

  it.each(values.map((value, index) => [index, value] as const))(
    'value %i does not come out of bash printf q-quoting',
    async (index, value) => {
      const run = await runVault(
        ['run', '--credential', `db-pass-${index}=DB_PASS`, '--', 'bash', '-c', 'printf "%q\\n" "$DB_PASS"'],
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
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      // What bash printed, decoded back: the output must not let anyone recover the value.
      const printed = run.stdout.trim();
      const decoded = printed.replace(/\\(.)/g, '$1');
      expect(decoded).not.toBe(value);
      expect(run.stdout).toBe('[REDACTED:DB_PASS]\n');
    },
    60_000,
  );
});
