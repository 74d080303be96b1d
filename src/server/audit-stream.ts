/**
 * The files behind the audit stream: the JSON-lines output (a file, fsynced before each
 * cursor save, or stdout) and the cursor file (written to a temporary file, fsynced,
 * renamed over).
 */
import { once } from 'node:events';
import { type FileHandle, open, readFile, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { CursorStore, StreamCursor, StreamOutput } from '../core/audit-follower.js';

export async function fileStreamOutput(path: string): Promise<StreamOutput> {
  const handle: FileHandle = await open(path, 'a', 0o600);
  return {
    async write(lines) {
      await handle.appendFile(`${lines.join('\n')}\n`, 'utf8');
    },
    sync: () => handle.sync(),
    close: () => handle.close(),
  };
}

export function writableStreamOutput(stream: NodeJS.WritableStream): StreamOutput {
  return {
    async write(lines) {
      if (!stream.write(`${lines.join('\n')}\n`)) await once(stream, 'drain');
    },
    sync: async () => {},
    close: async () => {},
  };
}

export function fileCursorStore(path: string): CursorStore {
  return {
    async load() {
      let text: string;
      try {
        text = await readFile(path, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw err;
      }
      const parsed = JSON.parse(text) as StreamCursor;
      if (typeof parsed !== 'object' || parsed === null || typeof parsed.tenants !== 'object') {
        throw new Error(`the audit stream cursor ${path} is malformed; delete it to replay the whole log`);
      }
      return parsed;
    },
    async save(cursor) {
      const temporary = `${path}.tmp`;
      const handle = await open(temporary, 'w', 0o600);
      try {
        await handle.writeFile(JSON.stringify(cursor), 'utf8');
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temporary, path);
      // The rename itself is durable only once the directory is synced.
      const dir = await open(dirname(path), 'r');
      try {
        await dir.sync();
      } finally {
        await dir.close();
      }
    },
  };
}

export function memoryCursorStore(): CursorStore {
  let saved: StreamCursor | undefined;
  return {
    load: async () => saved,
    save: async (cursor) => {
      saved = structuredClone(cursor);
    },
  };
}
