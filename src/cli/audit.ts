/** `vault audit tail|verify`. */
import type { Command } from 'commander';
import { durationMs } from '../lib/duration.js';
import type { AuditOutcome, AuditRecord } from '../sdk/index.js';
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
      // Page through to the end, keeping the last `lines` records.
      let recent: AuditRecord[] = [];
      let afterSeq = 0;
      for (;;) {
        const page = await vault.audit.query({ ...filters, afterSeq, limit: 1000 });
        recent = [...recent, ...page].slice(-lines);
        if (page.length < 1000) break;
        afterSeq = page.at(-1)!.seq;
      }
      afterSeq = Math.max(afterSeq, recent.at(-1)?.seq ?? 0);
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
      while (!stopped) {
        await new Promise((resolve) => setTimeout(resolve, intervalMs));
        if (stopped) break;
        const page = await vault.audit.query({ ...filters, afterSeq, limit: 1000 });
        emit(page, false);
        afterSeq = page.at(-1)?.seq ?? afterSeq;
      }
    },
  );

  withCommon(
    group.command('verify').description('Verify the hash chain of the audit log (exit 9 if broken)'),
  ).action(async (options: CommonOptions) => {
    const result = await (await connect(options)).audit.verify();
    if (options.json) printJson(result);
    else if (result.ok)
      process.stdout.write(`Audit chain intact: ${result.records} records, head at ${result.headSeq}.\n`);
    if (!result.ok) {
      throw new ExitError(
        exitCodes.auditBroken,
        `audit chain broken at record ${result.brokenAt ?? '?'}: ${result.reason ?? 'hash mismatch'}; ` +
          'the log was edited, truncated or reordered: keep the data directory for investigation',
      );
    }
  });
}
