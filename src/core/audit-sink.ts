import { once } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';
import type { Writable } from 'node:stream';
import type { AuditCheckpoint, AuditRecord } from '../contract/audit.js';

/** Receives each committed audit record, e.g. to stream JSON lines to a SIEM. */
export interface AuditSink {
  write(record: AuditRecord): void;
  /** A signed checkpoint, written as a `{"checkpoint": {...}}` line. */
  checkpoint?(checkpoint: AuditCheckpoint): void;
  close(): Promise<void>;
}

export const nullAuditSink: AuditSink = { write: () => {}, close: async () => {} };

/** JSON lines to a stream (stdout) or an append-only file (mode 0600). */
export function jsonLinesAuditSink(target: Writable | { file: string }): AuditSink {
  const stream: Writable | WriteStream =
    'file' in target ? createWriteStream(target.file, { flags: 'a', mode: 0o600 }) : target;
  return {
    write: (record) => {
      stream.write(`${JSON.stringify(record)}\n`);
    },
    checkpoint: (checkpoint) => {
      stream.write(`${JSON.stringify({ checkpoint })}\n`);
    },
    close: async () => {
      if ('file' in target) {
        stream.end();
        await once(stream, 'finish');
      }
    },
  };
}
