/**
 * Secret values never come from argv (it shows in `ps` and shell history): a prompt that does
 * not echo (on a terminal), stdin (`--value-stdin`), or a file (`--value-file`).
 */
import { readFileSync } from 'node:fs';
import { UsageError } from './exit-codes.js';

export interface ValueSourceOptions {
  valueStdin?: boolean;
  valueFile?: string;
}

/** Adds `--value-stdin` and `--value-file` to a command. */
export const valueSourceHelp = {
  stdin: 'read the value from stdin (a trailing newline is removed)',
  file: 'read the value from a file (a trailing newline is removed)',
};

const chomp = (text: string) => text.replace(/\r?\n$/, '');

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Reads a line from the terminal without echoing it. */
export function promptHidden(question: string): Promise<string> {
  const input = process.stdin;
  return new Promise((resolve, reject) => {
    process.stderr.write(question);
    let value = '';
    input.setRawMode(true);
    input.resume();
    input.setEncoding('utf8');
    const done = (error?: Error) => {
      input.setRawMode(false);
      input.pause();
      input.off('data', onData);
      process.stderr.write('\n');
      if (error) reject(error);
      else resolve(value);
    };
    const onData = (chunk: string) => {
      for (const char of chunk) {
        if (char === '\r' || char === '\n' || char === '\u0004') return done();
        if (char === '\u0003') return done(new UsageError('cancelled'));
        if (char === '\u007f' || char === '\b') value = value.slice(0, -1);
        else value += char;
      }
    };
    input.on('data', onData);
  });
}

/**
 * The value from `--value-stdin`, `--value-file`, or a hidden prompt. Returns undefined when
 * none was given and `optional` (e.g. rotate, which then generates one).
 */
export async function readSecretValue(
  options: ValueSourceOptions,
  what: string,
  { optional = false } = {},
): Promise<string | undefined> {
  if (options.valueStdin && options.valueFile)
    throw new UsageError('give either --value-stdin or --value-file, not both');
  let value: string | undefined;
  if (options.valueStdin) value = chomp(await readStdin());
  else if (options.valueFile) {
    try {
      value = chomp(readFileSync(options.valueFile, 'utf8'));
    } catch (err) {
      throw new UsageError(`cannot read --value-file ${options.valueFile}: ${(err as Error).message}`);
    }
  } else if (optional) return undefined;
  else if (process.stdin.isTTY) {
    value = await promptHidden(`Value for ${what} (input hidden): `);
  } else {
    throw new UsageError(
      `no value for ${what}: pipe it with --value-stdin or name a file with --value-file ` +
        '(values are never taken from the command line)',
    );
  }
  if (value === '') throw new UsageError(`the value for ${what} is empty`);
  return value;
}
