/**
 * The scrubber shared by `vault run` and the MCP run tool, against what real tools print:
 * coreutils base64 (wrapped at 76), xxd (plain, -p wrapped at 60), od, hexdump, python3, bash
 * printf %q, curl-style Basic headers. Each command gets the value in its environment, as
 * `vault run` gives it, and none of its output may give the value away.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { runScrubbed } from '../../src/lib/run-scrubbed.js';

const long = `sk_live_${'A1b2C3d4E5'.repeat(10)}/+=&`; // 104 bytes: base64 wraps, xxd -p wraps
const special = "p@ss w/rd'&$!*(~)é:x";
const short = 'pw9';

const run = async (value: string, command: string) => {
  const result = await runScrubbed({
    file: '/bin/bash',
    args: ['-c', command],
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', V: value },
    secrets: [{ name: 'V', value }],
  });
  expect(result.exitCode, result.stderr).toBe(0);
  return result.stdout;
};

/** What the same command prints without the scrubber: proves the case is real. */
const unscrubbed = (value: string, command: string) =>
  execFileSync('/bin/bash', ['-c', command], { env: { PATH: process.env.PATH ?? '', V: value } }).toString();

/**
 * The pieces of a command's output that come from the value: whitespace-separated tokens of
 * its unscrubbed output that the same command does not print for a decoy of the same length
 * (offsets, headers and layout are the same for both and do not count).
 */
const telltales = (value: string, command: string) => {
  const tokens = (text: string) => new Set(text.split(/[\s|]+/).filter((t) => t.length >= 2));
  const decoy = tokens(unscrubbed('Z'.repeat(Buffer.byteLength(value)), command));
  return [...tokens(unscrubbed(value, command))].filter((t) => !decoy.has(t));
};

describe('scrubbing what real tools print', () => {
  it.each([
    ['base64 (wrapped at 76 columns)', long, 'printf %s "$V" | base64'],
    ['base64 -w 20', long, 'printf %s "$V" | base64 -w 20'],
    ['xxd -p (wrapped at 60 hex characters)', long, 'printf %s "$V" | xxd -p'],
    ['xxd', long, 'printf %s "$V" | xxd'],
    ['xxd -g 1', long, 'printf %s "$V" | xxd -g 1'],
    ['od -c', long, 'printf %s "$V" | od -c'],
    ['od -x', long, 'printf %s "$V" | od -x'],
    ['od (octal words)', long, 'printf %s "$V" | od'],
    ['od -A x -t x1z', long, 'printf %s "$V" | od -A x -t x1z'],
    ['od -An -tx1', long, 'printf %s "$V" | od -An -tx1'],
    ['hexdump', long, 'printf %s "$V" | hexdump'],
    ['hexdump -C', long, 'printf %s "$V" | hexdump -C'],
    [
      'python3 urllib.parse.quote (keeps /)',
      special,
      `python3 -c 'import os,urllib.parse;print(urllib.parse.quote(os.environ["V"]))'`,
    ],
    [
      'python3 quote_plus',
      special,
      `python3 -c 'import os,urllib.parse;print(urllib.parse.quote_plus(os.environ["V"]))'`,
    ],
    ['python3 json.dumps', special, `python3 -c 'import os,json;print(json.dumps({"v":os.environ["V"]}))'`],
    ['python3 repr', special, `python3 -c 'import os;print(repr(os.environ["V"]))'`],
    ['python3 shlex.quote', special, `python3 -c 'import os,shlex;print(shlex.quote(os.environ["V"]))'`],
    ['bash printf %q', special, 'printf "%q\\n" "$V"'],
    ['node JSON.stringify', special, `node -e 'console.log(JSON.stringify(process.env.V))'`],
  ])('%s', async (_name, value, command) => {
    const tells = telltales(value, command);
    expect(tells.length).toBeGreaterThan(0);
    const output = await run(value, command);
    expect(output).toContain('[REDACTED:V]');
    for (const tell of tells) expect(output).not.toContain(tell);
    expect(output.replace(/\s+/g, '')).not.toContain(Buffer.from(value).toString('base64').slice(4, 20));
  });

  it('a short value inside an HTTP Basic header (base64 of user:value)', async () => {
    const command = 'printf "Authorization: Basic %s\\n" "$(printf "admin:%s" "$V" | base64)"';
    expect(unscrubbed(short, command)).toContain(Buffer.from(`admin:${short}`).toString('base64'));
    const output = await run(short, command);
    expect(output).toBe('Authorization: Basic [REDACTED:V]\n');
  });

  it('a value with a NUL byte is refused without quoting it', async () => {
    const value = 'nul-secret-\0-tail-value';
    const failed = runScrubbed({
      file: '/bin/true',
      args: [],
      env: { V: value },
      secrets: [{ name: 'V', value }],
    });
    await expect(failed).rejects.toThrow(/value for V contains a NUL byte/);
    await failed.catch((err: Error) => {
      expect(err.message).not.toContain('nul-secret');
      expect(err.message).not.toContain('tail-value');
    });
  });

  it('leaves ordinary output alone', async () => {
    const output = await run(long, 'echo hello; printf "done\\n" | xxd -p; echo bye');
    expect(output).toBe(`hello\n${Buffer.from('done\n').toString('hex')}\nbye\n`);
  });
});
