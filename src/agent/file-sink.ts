import { randomBytes } from 'node:crypto';
import { chmod, type FileHandle, open, readdir, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../lib/logger.js';
import type { FileFormat } from '../webhook/annotations.js';

/**
 * Where secret files live: one directory (a tmpfs in a pod). A write is atomic (a temporary
 * file in the same directory, fsync, rename), so a reader sees the old file or the new one and
 * never a partial one. A wipe overwrites the content with zeros in place, syncs, then unlinks,
 * so no copy of the value stays in the file's pages; a replaced file is zeroed the same way.
 *
 * In a pod the agent is non-root with every capability dropped, so it cannot open its own
 * 0400 files for writing: it first gives itself write permission (an owner may chmod). When
 * even that fails (a file someone else owns), the file is still unlinked: removing the name
 * matters more than zeroing, and a wipe must never stop the agent.
 */

export interface FileSink {
  readonly directory: string;
  write(name: string, content: string, mode: number): Promise<void>;
  /** Zeroes and removes the file; false when there was none. */
  wipe(name: string): Promise<boolean>;
  /**
   * Zeroes and removes what a previous agent left of the file: temporary files of a write a
   * crash interrupted (they hold the value). Returns how many it removed.
   */
  sweepTemporaries(name: string): Promise<number>;
}

export interface FileSinkOptions {
  /** Files are given this group (a group the process is in, like the pod's fsGroup). */
  group?: number;
  /** Told when a file could be removed but not zeroed first. */
  logger?: Pick<Logger, 'warn'>;
}

export function createFileSink(directory: string, options: FileSinkOptions = {}): FileSink {
  const path = (name: string) => {
    if (name.includes('/') || name === '.' || name === '..')
      throw new RangeError(`"${name}" is not a file name`);
    return join(directory, name);
  };

  const sink: FileSink = {
    directory,
    async write(name, content, mode) {
      const target = path(name);
      const temp = join(directory, `.${name}.tmp-${randomBytes(6).toString('hex')}`);
      const data = Buffer.from(content, 'utf8');
      const handle = await open(temp, 'wx', mode);
      try {
        // Before any content: the group first (a chown may clear mode bits), then the mode,
        // which open() masked with the umask, exactly.
        if (options.group !== undefined) await handle.chown(-1, options.group);
        await handle.chmod(mode);
        await handle.writeFile(data);
        await handle.sync();
      } catch (err) {
        await handle.close();
        await unlink(temp).catch(() => {});
        throw err;
      } finally {
        data.fill(0);
      }
      await handle.close();
      // Keep hold of the file being replaced so its old content can be zeroed after the swap.
      const previous = await openForZeroing(target).catch(() => undefined);
      try {
        await rename(temp, target);
        await syncDirectory(directory);
        if (previous) await zero(previous);
      } finally {
        await previous?.close();
      }
    },
    async wipe(name) {
      const target = path(name);
      try {
        const handle = await openForZeroing(target);
        try {
          await zero(handle);
        } finally {
          await handle.close();
        }
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
        options.logger?.warn(
          { file: name, code: (err as NodeJS.ErrnoException).code },
          'could not zero the file before removing it',
        );
      }
      try {
        await unlink(target);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
        throw err;
      }
      await syncDirectory(directory);
      return true;
    },
    async sweepTemporaries(name) {
      path(name);
      const prefix = `.${name}.tmp-`;
      let removed = 0;
      for (const entry of await readdir(directory)) {
        if (!entry.startsWith(prefix)) continue;
        if (await sink.wipe(entry).catch(() => false)) removed++;
      }
      return removed;
    },
  };
  return sink;
}

/** Opens a file to overwrite it; a read-only file its owner may write after a chmod u+w. */
async function openForZeroing(target: string): Promise<FileHandle> {
  try {
    return await open(target, 'r+');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EACCES' && code !== 'EPERM') throw err;
  }
  // The file is about to be zeroed and removed (or replaced): write permission for its owner
  // exposes nothing.
  await chmod(target, 0o600);
  return await open(target, 'r+');
}

async function zero(handle: FileHandle): Promise<void> {
  const { size } = await handle.stat();
  if (size > 0) await handle.write(Buffer.alloc(size), 0, size, 0);
  await handle.sync();
}

async function syncDirectory(directory: string): Promise<void> {
  const dir = await open(directory, 'r');
  try {
    await dir.sync();
  } catch {
    // Some file systems refuse fsync on a directory; the rename is still atomic.
  } finally {
    await dir.close();
  }
}

/** The file's content for a value in a format. */
export function render(format: FileFormat, envName: string, value: string): string {
  switch (format) {
    case 'raw':
      return value;
    case 'env':
      // Single quotes keep every character literal in sh and dotenv; a quote is closed, escaped, reopened.
      return `${envName}='${value.replaceAll("'", "'\\''")}'\n`;
    case 'json':
      return `${JSON.stringify({ [envName]: value })}\n`;
  }
}
