/** `vault lease create|get|read|renew|revoke|list`. */
import type { Command } from 'commander';
import type { Lease, LeaseState } from '../sdk/index.js';
import { type CommonOptions, connect, parseIdentity, positiveInt, withCommon } from './context.js';
import { UsageError } from './exit-codes.js';
import { printFields, printJson, printTable, relativeTime, timeAgo } from './output.js';

const states: LeaseState[] = ['active', 'expired', 'revoked'];
const who = (identity: { type: string; name: string }) => `${identity.type}:${identity.name}`;

/** The lease as JSON; the value only when asked for. */
export function leaseJson(lease: Lease, withValue = false) {
  const { value, ...rest } = lease;
  return {
    ...rest,
    issuedAt: lease.issuedAt.toISOString(),
    expiresAt: lease.expiresAt.toISOString(),
    maxExpiresAt: lease.maxExpiresAt.toISOString(),
    ...(lease.revokedAt && { revokedAt: lease.revokedAt.toISOString() }),
    ...(withValue && value !== undefined && { value }),
  };
}

function show(lease: Lease, options: CommonOptions) {
  if (options.json) return printJson(leaseJson(lease));
  printFields([
    ['lease', lease.id],
    ['credential', `${lease.credentialName} (version ${lease.version})`],
    ['for', who(lease.identity)],
    ['issued by', who(lease.issuedBy)],
    ['state', lease.state],
    ['expires', `${lease.expiresAt.toISOString()} (${relativeTime(lease.expiresAt)})`],
    ['max expiry', lease.maxExpiresAt.toISOString()],
    ['renewable', lease.renewable ? `yes (renewed ${lease.renewCount}x)` : 'no'],
    ['granted', lease.grantedTtlSeconds !== undefined ? `${lease.grantedTtlSeconds}s` : undefined],
    [
      'revoked',
      lease.revokedAt
        ? `${lease.revokedAt.toISOString()}${lease.revokeReason ? ` (${lease.revokeReason})` : ''}`
        : undefined,
    ],
  ]);
}

export function register(program: Command): void {
  const group = program
    .command('lease')
    .alias('leases')
    .description('Lease credentials: time-limited, audited access to a value');

  withCommon(
    group
      .command('create <credential>')
      .description('Lease a credential (prints the lease; add --show-value to print the value too)')
      .option('--ttl <duration>', 'how long, e.g. 15m (default: the credential default, else 15m)')
      .option('--max-ttl <duration>', 'renewals never extend past issue time + this')
      .option('--for <type:name>', 'the identity the lease is for, e.g. agent:claude-code (default: you)')
      .option('--version <n>', 'a specific version (default: current)')
      .option('--no-renewable', 'the lease cannot be renewed')
      .option('--show-value', 'also print the value (on its own line, or as "value" with --json)'),
  ).action(
    async (
      credentialName: string,
      options: CommonOptions & {
        ttl?: string;
        maxTtl?: string;
        for?: string;
        version?: string;
        renewable: boolean;
        showValue?: boolean;
      },
    ) => {
      const identity = options.for ? parseIdentity(options.for, '--for') : undefined;
      const version = options.version ? positiveInt(options.version, '--version') : undefined;
      const vault = await connect(options);
      const lease = await vault.leases.create({
        credentialName,
        ...(options.ttl && { ttl: options.ttl }),
        ...(options.maxTtl && { maxTtl: options.maxTtl }),
        ...(identity && { identity }),
        ...(version && { version }),
        renewable: options.renewable,
      });
      if (options.json) return printJson(leaseJson(lease, options.showValue));
      show(lease, options);
      if (options.showValue) process.stdout.write(`value:      ${lease.value ?? ''}\n`);
    },
  );

  withCommon(group.command('get <id>').description("A lease's state (no value)")).action(
    async (id: string, options: CommonOptions) => {
      show(await (await connect(options)).leases.get(id), options);
    },
  );

  withCommon(
    group.command('read <id>').description('Print the value through an active lease (exit 7 if it ended)'),
  ).action(async (id: string, options: CommonOptions) => {
    const lease = await (await connect(options)).leases.read(id);
    if (options.json) return printJson(leaseJson(lease, true));
    process.stdout.write(`${lease.value ?? ''}\n`);
  });

  withCommon(
    group
      .command('renew <id>')
      .description('Renew a lease (capped by its max TTL; prints what was granted)')
      .option('--increment <duration>', 'how long from now (default: the original TTL)'),
  ).action(async (id: string, options: CommonOptions & { increment?: string }) => {
    const vault = await connect(options);
    show(await vault.leases.renew(id, options.increment ? { increment: options.increment } : {}), options);
  });

  withCommon(
    group
      .command('revoke [id]')
      .description(
        'Revoke a lease, or in bulk: every lease of a credential, of an identity, or of the tenant',
      )
      .option('--credential <name>', "revoke all of this credential's leases")
      .option('--identity <type:name>', "revoke all of this identity's leases")
      .option('--all', 'revoke every lease of the tenant'),
  ).action(
    async (
      id: string | undefined,
      options: CommonOptions & { credential?: string; identity?: string; all?: boolean },
    ) => {
      const chosen = [id, options.credential, options.identity, options.all].filter(
        (x) => x !== undefined && x !== false,
      );
      if (chosen.length !== 1)
        throw new UsageError('give exactly one of: a lease id, --credential, --identity, --all');
      const vault = await connect(options);
      if (id) return show(await vault.leases.revoke(id), options);
      const result = await vault.leases.revokeBulk(
        options.credential
          ? { credentialName: options.credential }
          : options.identity
            ? { identity: parseIdentity(options.identity, '--identity') }
            : { all: true },
      );
      if (options.json) return printJson(result);
      process.stdout.write(`Revoked ${result.revoked} lease${result.revoked === 1 ? '' : 's'}.\n`);
    },
  );

  withCommon(
    group
      .command('list')
      .alias('ls')
      .description('List leases you may see')
      .option('--state <state>', `only ${states.join(', ')}`)
      .option('--credential <name>', 'only leases of this credential')
      .option('--identity <type:name>', 'only leases for this identity')
      .option('--limit <n>', 'at most this many per page (default 100)')
      .option('--continue <token>', 'the next page: the token the previous page printed'),
  ).action(
    async (
      options: CommonOptions & {
        state?: string;
        credential?: string;
        identity?: string;
        limit?: string;
        continue?: string;
      },
    ) => {
      if (options.state && !states.includes(options.state as LeaseState))
        throw new UsageError(`--state must be one of ${states.join(', ')}`);
      const identity = options.identity ? parseIdentity(options.identity, '--identity') : undefined;
      const vault = await connect(options);
      const page = await vault.leases.page({
        ...(options.state && { state: options.state as LeaseState }),
        ...(options.credential && { credentialName: options.credential }),
        ...(identity && { identityType: identity.type, identityName: identity.name }),
        ...(options.limit && { limit: positiveInt(options.limit, '--limit') }),
        ...(options.continue && { continue: options.continue }),
      });
      const { leases } = page;
      // The token goes to stderr, so stdout stays one table or one JSON array per page.
      if (page.continue) process.stderr.write(`more leases: add --continue ${page.continue}\n`);
      if (options.json) return printJson(leases.map((lease) => leaseJson(lease)));
      printTable(
        ['ID', 'CREDENTIAL', 'VERSION', 'FOR', 'STATE', 'EXPIRES'],
        leases.map((l) => [
          l.id,
          l.credentialName,
          String(l.version),
          who(l.identity),
          l.state,
          // A revoked lease ended when it was revoked; its expiry no longer means anything.
          l.revokedAt ? `revoked ${timeAgo(l.revokedAt)}` : relativeTime(l.expiresAt),
        ]),
        'no leases',
      );
    },
  );
}
