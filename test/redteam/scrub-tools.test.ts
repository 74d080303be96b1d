/**
 * Red team: output layouts of common tools that the scrubber missed although the README names
 * them (xxd, od, shell quoting). Real commands, the value in their environment as `vault run`
 * gives it; the scrubbed output must not hold the value or a 12-character run of it.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { runScrubbed } from '../../src/lib/run-scrubbed.js';

const plain = 'sk_live_4eC39HqLyjWDarjtT1zdp7dc';
const special = 'p@ss"w$rd`x\\y/z+q=1&2 3';

const run = async (value: string, command: string) => {
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', V: value };
  // The case is real: without the scrubber the value is readable in the output.
  const raw = execFileSync('/bin/bash', ['-c', command], { env }).toString();
  const result = await runScrubbed({
    file: '/bin/bash',
    args: ['-c', command],
    env,
    secrets: [{ name: 'V', value }],
  });
  expect(result.exitCode, result.stderr).toBe(0);
  return { raw, out: result.stdout };
};

/** Letters and digits of the output, to catch a value laid out in columns or cells. */
const squeezed = (text: string) => text.replace(/[^A-Za-z0-9]/g, '');
const alnum = (value: string) => value.replace(/[^A-Za-z0-9]/g, '');

describe('red team: scrubber and common tool layouts', () => {
  it.each([
    ['xxd -u (upper-case dump)', plain, 'printf %s "$V" | xxd -u'],
    ['od -An -c (no offsets)', plain, 'printf %s "$V" | od -An -c'],
  ])('%s', async (_name, value, command) => {
    const { raw, out } = await run(value, command);
    expect(squeezed(raw)).toContain(alnum(value).slice(0, 12));
    expect(out).toContain('[REDACTED:V]');
    expect(squeezed(out)).not.toContain(alnum(value).slice(0, 12));
    expect(squeezed(out)).not.toContain(alnum(value).slice(-12));
  });

  it('bash declare -p (double-quoted, backslash escapes)', async () => {
    const { raw, out } = await run(special, 'declare -p V');
    expect(raw).toContain('\\"w\\$rd\\`x\\\\y');
    expect(out).toBe('declare -x V="[REDACTED:V]"\n');
  });
});
