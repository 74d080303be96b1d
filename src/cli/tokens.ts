/** `vault tokens create|lookup|revoke`. */
import type { Command } from 'commander';
import type { TokenInfo } from '../sdk/index.js';
import { type CommonOptions, collect, connect, parseIdentity, withCommon } from './context.js';
import { printFields, printJson, relativeTime } from './output.js';

export const tokenJson = (info: TokenInfo) => ({
  ...info,
  issuedAt: info.issuedAt.toISOString(),
  expiresAt: info.expiresAt.toISOString(),
});

export function showToken(info: TokenInfo) {
  printFields([
    ['accessor', info.accessor],
    ['identity', `${info.identity.type}:${info.identity.name}`],
    ['tenant', info.tenant],
    ['policies', info.policies.join(', ') || '-'],
    ['name', info.displayName],
    ['expires', `${info.expiresAt.toISOString()} (${relativeTime(info.expiresAt)})`],
    ['created by', info.createdBy ? `${info.createdBy.type}:${info.createdBy.name}` : undefined],
    ['system', info.system ? 'yes (may address any tenant)' : undefined],
  ]);
}

export function register(program: Command): void {
  const group = program.command('tokens').alias('token').description('Create, look up and revoke tokens');

  withCommon(
    group
      .command('create')
      .description('Create a token for an identity; prints the token once (stdout) and its details (stderr)')
      .requiredOption('--identity <type:name>', 'who the token authenticates, e.g. agent:ci-bot')
      .option('--policy <name>', 'a policy (repeatable)', collect)
      .option('--ttl <duration>', 'lifetime (default 1h)')
      .option('--display-name <text>', 'a label'),
  ).action(
    async (
      options: CommonOptions & { identity: string; policy?: string[]; ttl?: string; displayName?: string },
    ) => {
      const identity = parseIdentity(options.identity, '--identity');
      const vault = await connect(options);
      const created = await vault.tokens.create({
        identity,
        ...(options.policy && { policies: options.policy }),
        ...(options.ttl && { ttl: options.ttl }),
        ...(options.displayName && { displayName: options.displayName }),
      });
      if (options.json) return printJson(tokenJson(created));
      process.stderr.write(
        `Token for ${identity.type}:${identity.name}, accessor ${created.accessor}, expires ${relativeTime(created.expiresAt)}. ` +
          'It is shown only now:\n',
      );
      process.stdout.write(`${created.token}\n`);
    },
  );

  withCommon(
    group.command('lookup [accessor]').description('Look a token up by accessor (default: your own token)'),
  ).action(async (accessor: string | undefined, options: CommonOptions) => {
    const vault = await connect(options);
    const info = accessor ? await vault.tokens.lookup(accessor) : await vault.whoami();
    if (options.json) return printJson(tokenJson(info));
    showToken(info);
  });

  withCommon(group.command('revoke <accessor>').description('Revoke a token by accessor')).action(
    async (accessor: string, options: CommonOptions) => {
      await (await connect(options)).tokens.revoke(accessor);
      if (options.json) return printJson({ revoked: accessor });
      process.stdout.write(`Revoked token ${accessor}.\n`);
    },
  );
}
