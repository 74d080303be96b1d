/** Operations as-user.ts runs in a child process under another uid. */
import { readFile } from 'node:fs/promises';
import { createFileSink } from '../../src/agent/file-sink.js';

export async function read(path: string): Promise<{ content?: string; error?: string }> {
  try {
    return { content: await readFile(path, 'utf8') };
  } catch (err) {
    return { error: (err as NodeJS.ErrnoException).code ?? String(err) };
  }
}

type Outcome<T> = { ok: true; value: T } | { ok: false; error: string };
const outcome = async <T>(work: () => Promise<T>): Promise<Outcome<T>> => {
  try {
    return { ok: true, value: await work() };
  } catch (err) {
    return { ok: false, error: (err as Error).message };
  }
};

/** `group` arrives as null when the caller had none (JSON has no undefined in arrays). */
export const sinkWrite = (
  directory: string,
  name: string,
  content: string,
  mode: number,
  group?: number | null,
) =>
  outcome(() =>
    createFileSink(directory, typeof group === 'number' ? { group } : {}).write(name, content, mode),
  );

export const sinkWipe = (directory: string, name: string) =>
  outcome(() => createFileSink(directory).wipe(name));
