/**
 * The embedded store: etcd's KV semantics on one SQLite file, for `vault dev` and
 * single-node installs. Transactions are committed in WAL mode with synchronous=FULL, so a
 * transaction that returned survives kill -9 and power loss. A change log table keeps the
 * last `historyRevisions` revisions of events for watches.
 *
 * SQLite's commit (with its fsync) blocks Node's thread, so no request can be read while it
 * runs. A transaction therefore waits for one turn of the event loop, and every transaction
 * submitted in that turn (one tenant's group commit, another tenant's, a checkpoint) is
 * committed in one SQLite transaction, one fsync for all: each in its own savepoint, with
 * its own revision, in the order submitted, so each succeeds, fails its compare or fails
 * alone exactly as if it had been committed by itself. A writer about to form its next
 * group waits for one turn too (`ready`), so requests that arrived while a commit blocked
 * the thread are read and join it.
 */
import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { StoreUnavailableError, VaultError } from '../lib/errors.js';
import { type Logger, silentLogger } from '../lib/logger.js';
import { StoreClosedError, WatchCompactedError } from './errors.js';
import { prefixEnd, rangeStart, utf8 } from './keys.js';
import type {
  FailureRead,
  KeyValue,
  Op,
  RangeOptions,
  RangeResult,
  Store,
  Txn,
  TxnResult,
  WatchEvent,
  Watcher,
} from './store.js';
import { assertKey, validateTxn } from './validate-txn.js';

export interface EmbeddedStoreOptions {
  /** The data directory (created with mode 0700); the database is `store.db` inside it. */
  path: string;
  logger?: Logger;
  /** How many revisions of change history watches can replay (default 10,000). */
  historyRevisions?: number;
  /** The most compares, or operations in a branch, one transaction may hold (default 1024). */
  maxTxnOps?: number;
  /** Told after each SQLite commit how many transactions it carried (tests, diagnostics). */
  onCommit?: (transactions: number) => void;
}

export const embeddedStoreFile = 'store.db';

const schemaVersion = 1;
const defaultHistoryRevisions = 10_000;
/**
 * SQLite has no such limit; this one keeps a transaction's work (and the time it holds the
 * thread) bounded, and lets callers size bulk work as they do on etcd.
 */
const defaultMaxTxnOps = 1_024;
/** Compact in batches, so the delete runs once per this many revisions, not on every commit. */
const maxCompactionBatch = 1_000;

interface KvRow {
  key: Buffer;
  value: string;
  create_revision: number;
  mod_revision: number;
  version: number;
}

interface EventRow {
  revision: number;
  key: Buffer;
  value: string | null;
}

interface Submitted {
  txn: Txn;
  resolve: (result: TxnResult) => void;
  reject: (error: unknown) => void;
}

/** One transaction's part of a batch: what it wrote, or why it failed. */
type Applied =
  | { ok: true; succeeded: boolean; events: WatchEvent[]; revision: number; reads?: TxnResult['reads'] }
  | { ok: false; error: unknown };

interface LiveWatch {
  prefix: string;
  fromRevision: number;
  queue: WatchEvent[];
  scheduled: boolean;
  closed: boolean;
  onEvent: (event: WatchEvent) => void;
}

export async function openEmbeddedStore(options: EmbeddedStoreOptions): Promise<Store> {
  const logger = options.logger ?? silentLogger;
  const historyRevisions = Math.max(1, options.historyRevisions ?? defaultHistoryRevisions);
  const maxTxnOps = options.maxTxnOps ?? defaultMaxTxnOps;
  const compactionBatch = Math.min(maxCompactionBatch, Math.ceil(historyRevisions / 10));
  const file = join(options.path, embeddedStoreFile);
  mkdirSync(options.path, { recursive: true, mode: 0o700 });
  chmodSync(options.path, 0o700);
  // SQLite gives its -wal file the mode of the database file. An existing file is only
  // chmod-ed, never opened here: closing any descriptor of a file drops every POSIX lock this
  // process holds on it, which would silently release another connection's exclusive lock.
  if (existsSync(file)) chmodSync(file, 0o600);
  else closeSync(openSync(file, 'wx', 0o600));

  const db = openExclusive(file, options.path);
  const statements = prepare(db);

  let revision = statements.getMeta.get('revision')?.value ?? 1;
  let compactRevision = statements.getMeta.get('compact_revision')?.value ?? 0;
  let closed = false;
  const watches = new Set<LiveWatch>();

  logger.debug({ path: options.path, revision, compactRevision }, 'embedded store opened');

  const toKeyValue = (row: KvRow): KeyValue => ({
    key: row.key.toString('utf8'),
    value: row.value,
    createRevision: row.create_revision,
    modRevision: row.mod_revision,
    version: row.version,
  });

  const assertOpen = () => {
    if (closed) throw new StoreClosedError('embedded');
  };

  const readRange = (prefix: string, rangeOptions: RangeOptions) => {
    const limit = rangeOptions.limit && rangeOptions.limit > 0 ? rangeOptions.limit : -1;
    const prefixBytes = utf8(prefix);
    const start = rangeStart(
      prefixBytes,
      rangeOptions.startAfter === undefined ? undefined : utf8(rangeOptions.startAfter),
    );
    const end = prefixEnd(prefixBytes);
    // One row beyond the limit tells whether there are more.
    const fetch = limit > 0 ? limit + 1 : -1;
    const rows = end
      ? statements.rangeBounded.all(start, end, fetch)
      : statements.rangeFrom.all(start, fetch);
    const more = limit > 0 && rows.length > limit;
    return { kvs: (more ? rows.slice(0, limit) : rows).map(toKeyValue), more };
  };

  const failureRead = (read: FailureRead) => {
    if ('prefix' in read) return readRange(read.prefix, read);
    const row = statements.getKv.get(utf8(read.key));
    return { kvs: row ? [toKeyValue(row)] : [], more: false };
  };

  const keysUnder = (prefix: string): Buffer[] => {
    const start = utf8(prefix);
    const end = prefixEnd(start);
    const rows = end ? statements.keysBounded.all(start, end) : statements.keysFrom.all(start);
    return rows.map((row) => row.key);
  };

  const applyOps = (ops: Op[], next: number): WatchEvent[] => {
    const events: WatchEvent[] = [];
    const remove = (key: Buffer) => {
      if (statements.deleteKey.run(key).changes > 0) {
        events.push({ type: 'delete', key: key.toString('utf8'), modRevision: next });
      }
    };
    for (const op of ops) {
      if (op.type === 'put') {
        statements.putKv.run(utf8(op.key), op.value, next, next);
        events.push({ type: 'put', key: op.key, value: op.value, modRevision: next });
      } else if (op.type === 'delete') {
        remove(utf8(op.key));
      } else {
        for (const key of keysUnder(op.prefix)) remove(key);
      }
    }
    return events;
  };

  /** One transaction at `base` (the revision before it); nested in a batch, a savepoint. */
  const commitOne = db.transaction((txn: Txn, base: number) => {
    const succeeded = (txn.compare ?? []).every(
      (compare) => (statements.getKv.get(utf8(compare.key))?.mod_revision ?? 0) === compare.modRevision,
    );
    const next = base + 1;
    const events = applyOps(succeeded ? txn.success : (txn.failure ?? []), next);
    const reads = !succeeded && txn.failureReads?.length ? txn.failureReads.map(failureRead) : undefined;
    if (events.length === 0) return { succeeded, events, revision: base, ...(reads ? { reads } : {}) };
    statements.setMeta.run('revision', next);
    events.forEach((event, seq) => {
      statements.insertEvent.run(next, seq, utf8(event.key), event.value ?? null);
    });
    return { succeeded, events, revision: next, ...(reads ? { reads } : {}) };
  });

  /** The batch in one SQLite transaction; a transaction that throws rolls back only its savepoint. */
  const commitBatch = db.transaction((txns: Txn[]) => {
    let at = revision;
    const applied = txns.map((txn): Applied => {
      try {
        const one = commitOne(txn, at);
        at = one.revision;
        return { ok: true, ...one };
      } catch (error) {
        return { ok: false, error };
      }
    });
    let compactTo = compactRevision;
    if (at - compactRevision > historyRevisions + compactionBatch) {
      compactTo = at - historyRevisions;
      statements.compactEvents.run(compactTo);
      statements.setMeta.run('compact_revision', compactTo);
    }
    return { applied, revision: at, compactRevision: compactTo };
  });

  let submitted: Submitted[] = [];
  let flushing = false;

  /** Commits what was submitted during the last turn of the event loop. */
  const flush = () => {
    flushing = false;
    const batch = submitted;
    submitted = [];
    if (batch.length === 0) return;
    if (closed) {
      for (const { reject } of batch) reject(new StoreClosedError('embedded'));
      return;
    }
    let committed: ReturnType<typeof commitBatch>;
    try {
      committed = guard(() => commitBatch.immediate(batch.map(({ txn }) => txn)));
    } catch (err) {
      // The commit itself failed (disk full, I/O error): nothing of the batch was written.
      for (const { reject } of batch) reject(err);
      return;
    }
    revision = committed.revision;
    if (committed.compactRevision !== compactRevision) {
      compactRevision = committed.compactRevision;
      logger.debug({ compactRevision }, 'embedded store compacted its change history');
    }
    options.onCommit?.(batch.length);
    const events = committed.applied.flatMap((applied) => (applied.ok ? applied.events : []));
    if (events.length > 0) publish(events);
    batch.forEach(({ resolve, reject }, i) => {
      const applied = committed.applied[i]!;
      if (applied.ok) {
        const { succeeded, revision: at, reads } = applied;
        resolve({ succeeded, revision: at, ...(reads ? { reads } : {}) });
      } else reject(guarded(applied.error));
    });
  };

  const schedule = (watch: LiveWatch) => {
    if (watch.scheduled || watch.closed) return;
    watch.scheduled = true;
    setImmediate(() => {
      watch.scheduled = false;
      while (!watch.closed && watch.queue.length > 0) {
        const event = watch.queue.shift()!;
        try {
          watch.onEvent(event);
        } catch (err) {
          logger.error({ err, prefix: watch.prefix }, 'a watch callback threw; the watch continues');
        }
      }
    });
  };

  const publish = (events: WatchEvent[]) => {
    for (const watch of watches) {
      const matching = events.filter(
        (e) => e.key.startsWith(watch.prefix) && e.modRevision >= watch.fromRevision,
      );
      if (matching.length === 0) continue;
      watch.queue.push(...matching);
      schedule(watch);
    }
  };

  const store: Store = {
    kind: 'embedded',
    maxTxnOps,

    // A commit blocked the thread: requests that arrived meanwhile are read first, so that
    // a writer's next group (the committer's next round) includes them.
    ready: () => new Promise((resolve) => setImmediate(resolve)),

    async get(key) {
      assertOpen();
      assertKey(key);
      return guard(() => {
        const row = statements.getKv.get(utf8(key));
        return row ? toKeyValue(row) : undefined;
      });
    },

    async getMany(keys) {
      assertOpen();
      for (const key of keys) assertKey(key);
      return guard(() =>
        keys.map((key) => {
          const row = statements.getKv.get(utf8(key));
          return row ? toKeyValue(row) : undefined;
        }),
      );
    },

    async range(prefix: string, rangeOptions: RangeOptions = {}): Promise<RangeResult> {
      assertOpen();
      return guard(() => ({ ...readRange(prefix, rangeOptions), revision }));
    },

    async count(prefix: string, countOptions: Pick<RangeOptions, 'startAfter'> = {}): Promise<number> {
      assertOpen();
      return guard(() => {
        const prefixBytes = utf8(prefix);
        const start = rangeStart(
          prefixBytes,
          countOptions.startAfter === undefined ? undefined : utf8(countOptions.startAfter),
        );
        const end = prefixEnd(prefixBytes);
        const row = end ? statements.countBounded.get(start, end) : statements.countFrom.get(start);
        return row?.n ?? 0;
      });
    },

    async txn(txn) {
      assertOpen();
      validateTxn(txn, maxTxnOps);
      return new Promise<TxnResult>((resolve, reject) => {
        submitted.push({ txn, resolve, reject });
        if (!flushing) {
          flushing = true;
          setImmediate(flush);
        }
      });
    },

    async watch(prefix, fromRevision, onEvent) {
      assertOpen();
      if (fromRevision > 0 && fromRevision <= compactRevision) {
        throw new WatchCompactedError(fromRevision, compactRevision);
      }
      const watch: LiveWatch = {
        prefix,
        fromRevision: fromRevision > 0 ? fromRevision : revision + 1,
        queue: [],
        scheduled: false,
        closed: false,
        onEvent,
      };
      if (watch.fromRevision <= revision) {
        // Replay and registration happen in one synchronous step: no commit can fall between.
        const start = utf8(prefix);
        const end = prefixEnd(start);
        const rows = guard(() =>
          end
            ? statements.eventsBounded.all(watch.fromRevision, start, end)
            : statements.eventsFrom.all(watch.fromRevision, start),
        );
        watch.queue.push(
          ...rows.map(
            (row): WatchEvent =>
              row.value === null
                ? { type: 'delete', key: row.key.toString('utf8'), modRevision: row.revision }
                : { type: 'put', key: row.key.toString('utf8'), value: row.value, modRevision: row.revision },
          ),
        );
      }
      watches.add(watch);
      schedule(watch);
      return {
        async close() {
          watch.closed = true;
          watch.queue.length = 0;
          watches.delete(watch);
        },
      } satisfies Watcher;
    },

    async ping() {
      assertOpen();
      guard(() => statements.ping.get());
    },

    async close() {
      if (closed) return;
      // What was submitted is committed, not dropped.
      flush();
      closed = true;
      for (const watch of watches) {
        watch.closed = true;
        watch.queue.length = 0;
      }
      watches.clear();
      db.close();
      logger.debug({ path: options.path, revision }, 'embedded store closed');
    },
  };
  return store;
}

/**
 * Opens the database and takes SQLite's exclusive lock for the life of the connection: the
 * operating system holds it, so it is released when the process dies, even by kill -9, and a
 * second process (or a second open in this one) fails at once with a clear error.
 */
function openExclusive(file: string, dir: string): Database.Database {
  const db = new Database(file, { timeout: 0 });
  try {
    db.pragma('locking_mode = EXCLUSIVE');
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    // Deleted values are overwritten on disk, not left in free pages.
    db.pragma('secure_delete = ON');
    // The first write takes the exclusive lock; this empty one takes it now.
    db.exec('BEGIN EXCLUSIVE; COMMIT;');
    migrate(db);
    return db;
  } catch (err) {
    db.close();
    if (isSqliteError(err) && (err.code === 'SQLITE_BUSY' || err.code === 'SQLITE_LOCKED')) {
      throw new VaultError(
        'conflict',
        `the data directory ${dir} is in use by another vault process (the embedded store allows one ` +
          'process at a time); stop that process or use another data directory',
      );
    }
    throw err;
  }
}

function migrate(db: Database.Database): void {
  db.exec(`
    CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS kv (
      key BLOB PRIMARY KEY,
      value TEXT NOT NULL,
      create_revision INTEGER NOT NULL,
      mod_revision INTEGER NOT NULL,
      version INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS events (
      revision INTEGER NOT NULL,
      seq INTEGER NOT NULL,
      key BLOB NOT NULL,
      value TEXT,
      PRIMARY KEY (revision, seq)
    ) WITHOUT ROWID;
  `);
  const row = db.prepare<[], { value: number }>("SELECT value FROM meta WHERE name = 'schema_version'").get();
  if (!row) {
    db.prepare("INSERT INTO meta (name, value) VALUES ('schema_version', ?)").run(schemaVersion);
  } else if (row.value !== schemaVersion) {
    throw new VaultError(
      'internal',
      `the embedded store has schema version ${row.value}, this build reads ${schemaVersion}; use a matching vault`,
    );
  }
}

function prepare(db: Database.Database) {
  const kvColumns = 'key, value, create_revision, mod_revision, version';
  return {
    ping: db.prepare('SELECT 1'),
    getMeta: db.prepare<[string], { value: number }>('SELECT value FROM meta WHERE name = ?'),
    setMeta: db.prepare<[string, number]>(
      'INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value',
    ),
    getKv: db.prepare<[Buffer], KvRow>(`SELECT ${kvColumns} FROM kv WHERE key = ?`),
    // A new key starts at version 1 with its create revision; an existing one keeps it.
    putKv: db.prepare<[Buffer, string, number, number]>(
      'INSERT INTO kv (key, value, create_revision, mod_revision, version) VALUES (?, ?, ?, ?, 1) ' +
        'ON CONFLICT(key) DO UPDATE SET value = excluded.value, mod_revision = excluded.mod_revision, version = version + 1',
    ),
    deleteKey: db.prepare<[Buffer]>('DELETE FROM kv WHERE key = ?'),
    keysBounded: db.prepare<[Buffer, Buffer], { key: Buffer }>(
      'SELECT key FROM kv WHERE key >= ? AND key < ? ORDER BY key',
    ),
    keysFrom: db.prepare<[Buffer], { key: Buffer }>('SELECT key FROM kv WHERE key >= ? ORDER BY key'),
    rangeBounded: db.prepare<[Buffer, Buffer, number], KvRow>(
      `SELECT ${kvColumns} FROM kv WHERE key >= ? AND key < ? ORDER BY key LIMIT ?`,
    ),
    countBounded: db.prepare<[Buffer, Buffer], { n: number }>(
      'SELECT COUNT(*) AS n FROM kv WHERE key >= ? AND key < ?',
    ),
    countFrom: db.prepare<[Buffer], { n: number }>('SELECT COUNT(*) AS n FROM kv WHERE key >= ?'),
    rangeFrom: db.prepare<[Buffer, number], KvRow>(
      `SELECT ${kvColumns} FROM kv WHERE key >= ? ORDER BY key LIMIT ?`,
    ),
    insertEvent: db.prepare<[number, number, Buffer, string | null]>(
      'INSERT INTO events (revision, seq, key, value) VALUES (?, ?, ?, ?)',
    ),
    eventsBounded: db.prepare<[number, Buffer, Buffer], EventRow>(
      'SELECT revision, key, value FROM events WHERE revision >= ? AND key >= ? AND key < ? ORDER BY revision, seq',
    ),
    eventsFrom: db.prepare<[number, Buffer], EventRow>(
      'SELECT revision, key, value FROM events WHERE revision >= ? AND key >= ? ORDER BY revision, seq',
    ),
    compactEvents: db.prepare<[number]>('DELETE FROM events WHERE revision <= ?'),
  };
}

interface SqliteError extends Error {
  code: string;
}

const isSqliteError = (err: unknown): err is SqliteError =>
  err instanceof Database.SqliteError && typeof (err as SqliteError).code === 'string';

/** Disk and I/O failures are "the store is unavailable"; anything else is a bug and rethrown. */
function guard<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw guarded(err);
  }
}

function guarded(err: unknown): unknown {
  if (
    isSqliteError(err) &&
    /^SQLITE_(BUSY|LOCKED|FULL|IOERR|CANTOPEN|READONLY|CORRUPT|NOTADB)/.test(err.code)
  ) {
    return new StoreUnavailableError(
      `the embedded store failed (${err.code}); check the data directory's disk`,
      err,
    );
  }
  return err;
}
