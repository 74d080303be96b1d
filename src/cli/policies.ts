/** `vault policies put|list|get|delete` and `vault identities put|list|get|delete`. */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { parse as parseYaml } from 'yaml';
import type { IdentityType, Policy, PolicyBody } from '../sdk/index.js';
import { type CommonOptions, collect, connect, withCommon } from './context.js';
import { UsageError } from './exit-codes.js';
import { printJson, printTable } from './output.js';

const identityTypes: IdentityType[] = ['human', 'agent', 'workload'];
const policyJson = (p: Policy) => ({
  ...p,
  createdAt: p.createdAt.toISOString(),
  updatedAt: p.updatedAt.toISOString(),
});

function readPolicyFile(path: string): PolicyBody {
  let text: string;
  try {
    text = readFileSync(path === '-' ? 0 : path, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read --file ${path}: ${(err as Error).message}`);
  }
  try {
    return parseYaml(text) as PolicyBody; // YAML is a superset of JSON
  } catch (err) {
    throw new UsageError(`--file ${path} is not JSON or YAML: ${(err as Error).message}`);
  }
}

function identityType(type: string): IdentityType {
  if (!identityTypes.includes(type as IdentityType))
    throw new UsageError(`the type must be one of ${identityTypes.join(', ')}`);
  return type as IdentityType;
}

export function register(program: Command): void {
  const policies = program
    .command('policies')
    .alias('policy')
    .description('Policies: which credentials an identity may list, lease, reveal, ...');

  withCommon(
    policies
      .command('put <name>')
      .description('Create or replace a policy from a JSON or YAML file ("-" for stdin)')
      .requiredOption(
        '-f, --file <path>',
        'the policy: { description?, rules: [{ credentials?, labels?, actions, maxTtl? }], actFor? }',
      )
      .addHelpText(
        'after',
        '\nExample policy (YAML):\n  rules:\n    - credentials: ["stripe-*"]\n      actions: [list, read-metadata, lease]\n      maxTtl: 1h\n',
      ),
  ).action(async (name: string, options: CommonOptions & { file: string }) => {
    const body = readPolicyFile(options.file);
    const policy = await (await connect(options)).policies.put(name, body);
    if (options.json) return printJson(policyJson(policy));
    process.stdout.write(
      `Stored policy ${policy.name} (${policy.rules.length} rule${policy.rules.length === 1 ? '' : 's'}).\n`,
    );
  });

  withCommon(policies.command('list').alias('ls').description('List policies')).action(
    async (options: CommonOptions) => {
      const list = await (await connect(options)).policies.list();
      if (options.json) return printJson(list.map(policyJson));
      printTable(
        ['NAME', 'RULES', 'DESCRIPTION'],
        list.map((p) => [p.name, String(p.rules.length), p.description ?? '']),
        'no policies',
      );
    },
  );

  withCommon(policies.command('get <name>').description('Show a policy (JSON)')).action(
    async (name: string, options: CommonOptions) => {
      printJson(policyJson(await (await connect(options)).policies.get(name)));
    },
  );

  withCommon(policies.command('delete <name>').alias('rm').description('Delete a policy')).action(
    async (name: string, options: CommonOptions) => {
      await (await connect(options)).policies.delete(name);
      if (options.json) return printJson({ deleted: name });
      process.stdout.write(`Deleted policy ${name}.\n`);
    },
  );

  const identities = program
    .command('identities')
    .alias('identity')
    .description('Identities (human, agent, workload) and their policies');

  withCommon(
    identities
      .command('put <type> <name>')
      .description('Create or update an identity; every token it holds gets its policies')
      .option('--policy <name>', 'a policy (repeatable)', collect),
  ).action(async (type: string, name: string, options: CommonOptions & { policy?: string[] }) => {
    const record = await (await connect(options)).identities.put(identityType(type), name, {
      policies: options.policy ?? [],
    });
    if (options.json) return printJson(record);
    process.stdout.write(
      `Stored ${record.type}:${record.name} with policies: ${record.policies.join(', ') || '(none)'}.\n`,
    );
  });

  withCommon(identities.command('list').alias('ls').description('List identities')).action(
    async (options: CommonOptions) => {
      const list = await (await connect(options)).identities.list();
      if (options.json) return printJson(list);
      printTable(
        ['TYPE', 'NAME', 'POLICIES'],
        list.map((i) => [i.type, i.name, i.policies.join(',') || '-']),
        'no identities',
      );
    },
  );

  withCommon(identities.command('get <type> <name>').description('Show an identity')).action(
    async (type: string, name: string, options: CommonOptions) => {
      printJson(await (await connect(options)).identities.get(identityType(type), name));
    },
  );

  withCommon(identities.command('delete <type> <name>').alias('rm').description('Delete an identity')).action(
    async (type: string, name: string, options: CommonOptions) => {
      await (await connect(options)).identities.delete(identityType(type), name);
      if (options.json) return printJson({ deleted: `${type}:${name}` });
      process.stdout.write(`Deleted ${type}:${name}.\n`);
    },
  );
}
