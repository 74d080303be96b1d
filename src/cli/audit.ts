/** `vault audit tail|verify|checkpoint|public-key|export`. */
import { once } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { durationMs } from '../lib/duration.js';
import {
  type AuditCheckpoint,
  type AuditOutcome,
  type AuditRecord,
  type AuditVerifyResult,
  NotFoundError,
} from '../sdk/index.js';
import { parseAuditCheckpoint } from '../sdk/parse.js';
import { type CommonOptions, connect, positiveInt, withCommon } from './context.js';
import { ExitError, exitCodes, UsageError } from './exit-codes.js';
import { printJson, printTable } from './output.js';

const outcomes: AuditOutcome[] = ['allowed', 'denied', 'error'];
const who = (identity: { type: string; name: string } | undefined) =>
  identity ? `${identity.type}:${identity.name}` : '';
const recordJson = (record: AuditRecord) => ({ ...record, time: record.time.toISOString() });
const row = (r: AuditRecord) => [
  String(r.seq),
  r.time.toISOString(),
  who(r.actor) + (r.actingFor ? ` (for ${who(r.actingFor)})` : ''),
  r.action,
  r.resource,
  r.outcome + (r.reason && r.outcome !== 'allowed' ? `: ${r.reason}` : ''),
];
const header = ['SEQ', 'TIME', 'WHO', 'ACTION', 'RESOURCE', 'OUTCOME'];

export function register(program: Command): void {
  const group = program.command('audit').description('Read and verify the audit log');

  withCommon(
    group
      .command('tail')
      .description('Show the latest audit records; --follow keeps printing new ones (JSON lines with --json)')
      .option('-n, --lines <n>', 'how many recent records to show first', '20')
      .option('-f, --follow', 'keep printing new records')
      .option('--interval <duration>', 'poll interval with --follow', '1s')
      .option('--action <action>', 'only this action, e.g. lease.create')
      .option('--outcome <outcome>', `only ${outcomes.join(', ')}`)
      .option('--identity <name>', 'only records by or for this identity name'),
  ).action(
    async (
      options: CommonOptions & {
        lines: string;
        follow?: boolean;
        interval: string;
        action?: string;
        outcome?: string;
        identity?: string;
      },
    ) => {
      if (options.outcome && !outcomes.includes(options.outcome as AuditOutcome)) {
        throw new UsageError(`--outcome must be one of ${outcomes.join(', ')}`);
      }
      const lines = positiveInt(options.lines, '--lines');
      let intervalMs: number;
      try {
        intervalMs = durationMs(options.interval);
      } catch (err) {
        throw new UsageError(`--interval: ${(err as Error).message}`);
      }
      const vault = await connect(options);
      const filters = {
        ...(options.action && { action: options.action }),
        ...(options.outcome && { outcome: options.outcome as AuditOutcome }),
        ...(options.identity && { identityName: options.identity }),
      };
      // The last `lines` records, read back from the head (not the whole chain from its start).
      // Following: from the head as it is now, not from the last match (with a rare filter that
      // may be far back); read before the recent records, so none between them is missed.
      const head = options.follow ? ((await vault.audit.tail({ limit: 1 }))[0]?.seq ?? 0) : 0;
      const recent = await vault.audit.tail({ ...filters, limit: lines });
      let afterSeq = Math.max(head, recent.at(-1)?.seq ?? 0);
      const emit = (records: AuditRecord[], first: boolean) => {
        if (options.json) {
          for (const record of records) process.stdout.write(`${JSON.stringify(recordJson(record))}\n`);
        } else if (first) printTable(header, records.map(row), 'no audit records');
        else if (records.length > 0)
          process.stdout.write(`${records.map((r) => row(r).join('  ')).join('\n')}\n`);
      };
      emit(recent, true);
      if (!options.follow) return;
      let stopped = false;
      const stop = () => {
        stopped = true;
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      let more = false;
      while (!stopped) {
        if (!more) await new Promise((resolve) => setTimeout(resolve, intervalMs));
        if (stopped) break;
        const page = await vault.audit.poll({ ...filters, afterSeq, limit: 1000 });
        emit(page.records, false);
        afterSeq = page.through;
        more = page.more;
      }
    },
  );

  withCommon(
    group
      .command('verify')
      .description(
        'Verify the audit chain (exit 9 if broken); with --since-checkpoint, that it extends a checkpoint you kept',
      )
      .option(
        '--since-checkpoint <file>',
        'a checkpoint (JSON) or an export/stream file (every checkpoint of the tenant in it is checked)',
      )
      .option(
        '--public-key <file>',
        "the tenant's audit public key (PEM) you pinned; default: ask the server",
      )
      .option('--save-checkpoint <file>', 'write the new checkpoint of the verified head here')
      .option(
        '--from-checkpoint',
        'read only the records after the newest --since-checkpoint (a full verify also re-reads older ones)',
      ),
  ).action(
    async (
      options: CommonOptions & {
        sinceCheckpoint?: string;
        publicKey?: string;
        saveCheckpoint?: string;
        fromCheckpoint?: boolean;
      },
    ) => {
      if (options.fromCheckpoint && !options.sinceCheckpoint)
        throw new UsageError('--from-checkpoint needs --since-checkpoint FILE (the checkpoint to start at)');
      const vault = await connect(options);
      const since = options.sinceCheckpoint
        ? await readCheckpoints(options.sinceCheckpoint, vault.audit)
        : undefined;
      const publicKey = options.publicKey
        ? await readFile(options.publicKey, 'utf8')
        : since
          ? await vault.audit.publicKey().then(
              (key) => key.publicKey,
              (err: unknown) => {
                // No key on the server while you hold a checkpoint it signed: the key is gone.
                if (err instanceof NotFoundError) return null;
                throw err;
              },
            )
          : undefined;
      const newest = since?.reduce((a, b) => (b.seq >= a.seq ? b : a));
      const result: AuditVerifyResult =
        publicKey === null
          ? {
              ok: false,
              records: 0,
              headSeq: 0,
              reason:
                "the server has no audit key for this tenant, but the checkpoint was signed with one: the key was removed or the tenant's audit history wiped",
            }
          : await vault.audit.verify({
              ...(since ? { since } : {}),
              ...(publicKey ? { publicKey } : {}),
              ...(options.fromCheckpoint ? { fromCheckpoint: true } : {}),
            });
      if (result.ok && result.checkpoint && options.saveCheckpoint) {
        await writeFile(options.saveCheckpoint, `${JSON.stringify(result.checkpoint)}\n`, { mode: 0o644 });
      }
      if (options.json) printJson(result);
      else if (result.ok)
        process.stdout.write(
          `Audit chain intact: ${result.records} records${result.fromSeq !== undefined ? ` after ${result.fromSeq}` : ''}, head at ${result.headSeq}` +
            (newest
              ? `; it extends the checkpoint at ${newest.seq} (${newest.time})` +
                (since!.length > 1 ? ` and agrees with ${since!.length - 1} earlier ones.\n` : '.\n')
              : '.\n'),
        );
      if (!result.ok) {
        throw new ExitError(
          exitCodes.auditBroken,
          `audit chain broken${result.brokenAt ? ` at record ${result.brokenAt}` : ''}: ${result.reason ?? 'hash mismatch'}; ` +
            'the log was edited, truncated, reordered or rolled back: keep the store for investigation',
        );
      }
    },
  );

  withCommon(
    group
      .command('checkpoint')
      .description('Sign a checkpoint of the chain now and print it (keep it outside the Vault)'),
  ).action(async (options: CommonOptions) => {
    const checkpoint = await (await connect(options)).audit.checkpoint();
    process.stdout.write(`${JSON.stringify(checkpoint)}\n`);
  });

  withCommon(
    group
      .command('public-key')
      .description("Print the Ed25519 public key that signs this tenant's checkpoints (PEM)"),
  ).action(async (options: CommonOptions) => {
    const key = await (await connect(options)).audit.publicKey();
    if (options.json) printJson(key);
    else process.stdout.write(key.publicKey.endsWith('\n') ? key.publicKey : `${key.publicKey}\n`);
  });

  withCommon(
    group
      .command('export')
      .description('Write the records and a checkpoint signed now as JSON lines (for a SIEM or an archive)')
      .option('-o, --output <file>', 'write here instead of stdout')
      .option('--after-seq <n>', 'only records after this sequence number', '0'),
  ).action(async (options: CommonOptions & { output?: string; afterSeq: string }) => {
    const vault = await connect(options);
    // Checkpoint first: the export then holds exactly the records it covers.
    const checkpoint = await vault.audit.checkpoint();
    const out = options.output ? createWriteStream(options.output, { mode: 0o600 }) : process.stdout;
    const write = async (line: string) => {
      if (!out.write(`${line}\n`)) await once(out, 'drain');
    };
    let afterSeq = Number(options.afterSeq);
    if (!Number.isInteger(afterSeq) || afterSeq < 0)
      throw new UsageError('--after-seq must be a whole number >= 0');
    let count = 0;
    while (afterSeq < checkpoint.seq) {
      const page = await vault.audit.query({ afterSeq, limit: 1000 });
      if (page.length === 0) break;
      for (const record of page) {
        if (record.seq > checkpoint.seq) break;
        await write(JSON.stringify(recordJson(record)));
        count += 1;
      }
      afterSeq = page.at(-1)!.seq;
    }
    await write(JSON.stringify({ checkpoint }));
    if (options.output) {
      (out as WriteStream).end();
      await once(out, 'finish');
      process.stderr.write(
        `Exported ${count} records and a checkpoint at ${checkpoint.seq} to ${options.output}.\n`,
      );
    }
  });
}

/**
 * The tenant's checkpoints in a checkpoint file, or in the checkpoint lines of an export or
 * stream file: all of them, since after a rollback only an older one may show the fork.
 */
async function readCheckpoints(
  file: string,
  audit: { publicKey(): Promise<{ tenant: string }> },
): Promise<AuditCheckpoint[]> {
  const text = await readFile(file, 'utf8');
  const found: AuditCheckpoint[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      continue;
    }
    const candidate = (value as { checkpoint?: unknown }).checkpoint ?? value;
    try {
      found.push(parseAuditCheckpoint(candidate));
    } catch {
      // a record line
    }
  }
  if (found.length === 0) throw new UsageError(`${file} holds no audit checkpoint`);
  const { tenant } = await audit.publicKey().catch(() => ({ tenant: found.at(-1)!.tenant }));
  const mine = found.filter((checkpoint) => checkpoint.tenant === tenant);
  return mine.length > 0 ? mine : [found.reduce((a, b) => (b.seq >= a.seq ? b : a))];
}
