import { VaultError } from '../lib/errors.js';

/**
 * A watch asked for history the store no longer keeps. The caller should read the current
 * state with `range` and watch again from the revision that read returned, plus one.
 */
export class WatchCompactedError extends VaultError {
  /** The store's compaction point, when it is known. */
  readonly compactRevision: number | undefined;

  constructor(fromRevision: number, compactRevision?: number) {
    const upTo = compactRevision === undefined ? 'its start' : `revision ${compactRevision}`;
    super(
      'conflict',
      `cannot watch from revision ${fromRevision}: the store's change history up to ${upTo} was compacted; ` +
        're-read the current state and watch from its revision + 1',
      { fromRevision, compactRevision },
    );
    this.name = 'WatchCompactedError';
    this.compactRevision = compactRevision;
  }
}

/** An operation on a store after `close()`. */
export class StoreClosedError extends VaultError {
  constructor(kind: string) {
    super('internal', `the ${kind} store was used after it was closed`);
    this.name = 'StoreClosedError';
  }
}
