/** `vault credentials create|list|get|put|rotate|delete`. */
import type { Command } from 'commander';
import type { Credential, CredentialType, GenerateSpec } from '../sdk/index.js';
import { type CommonOptions, collect, connect, parseLabels, positiveInt, withCommon } from './context.js';
import { addDynamic, type DynamicOptions, describeDynamic, dynamicSpec } from './dynamic-options.js';
import { UsageError } from './exit-codes.js';
import { formatLabels, printFields, printJson, printTable, timeAgo } from './output.js';
import { readSecretValue, type ValueSourceOptions, valueSourceHelp } from './secret-input.js';

const types: CredentialType[] = ['api-key', 'password', 'database-url', 'ssh-key', 'certificate', 'generic'];
const alphabets = ['alphanumeric', 'hex', 'base64url', 'printable'] as const;

type GenerateOptions = { generate?: boolean; length?: string; alphabet?: string };

function generateSpec(options: GenerateOptions): GenerateSpec | undefined {
  if (!options.generate && options.length === undefined && options.alphabet === undefined) return undefined;
  if (options.alphabet !== undefined && !(alphabets as readonly string[]).includes(options.alphabet)) {
    throw new UsageError(`--alphabet must be one of ${alphabets.join(', ')}`);
  }
  return {
    ...(options.length !== undefined && { length: positiveInt(options.length, '--length') }),
    ...(options.alphabet !== undefined && { alphabet: options.alphabet as GenerateSpec['alphabet'] }),
  };
}

const json = (credential: Credential) => ({
  ...credential,
  createdAt: credential.createdAt.toISOString(),
  updatedAt: credential.updatedAt.toISOString(),
  versions: credential.versions.map((v) => ({ ...v, createdAt: v.createdAt.toISOString() })),
});

function show(credential: Credential, options: CommonOptions, verb?: string) {
  if (options.json) return printJson(json(credential));
  if (verb) process.stderr.write(`${verb} ${credential.name} (version ${credential.currentVersion})\n`);
  printFields([
    ['name', credential.name],
    ['type', credential.type],
    ...describeDynamic(credential.dynamic),
    ['labels', formatLabels(credential.metadata) || '-'],
    ['version', String(credential.currentVersion)],
    [
      'versions',
      credential.versions
        .map((v) => `${v.version} (${v.fingerprint.replace(/^hmac-sha256:/, '').slice(0, 12)})`)
        .join(', '),
    ],
    ['default ttl', credential.leases?.defaultTtl],
    ['max ttl', credential.leases?.maxTtl],
    ['updated', `${credential.updatedAt.toISOString()} (${timeAgo(credential.updatedAt)})`],
  ]);
}

const addValueSource = (command: Command) =>
  command.option('--value-stdin', valueSourceHelp.stdin).option('--value-file <path>', valueSourceHelp.file);

const addGenerate = (command: Command) =>
  command
    .option('--generate', 'generate a random value instead of giving one')
    .option('--length <n>', 'generated length (default 32)')
    .option('--alphabet <name>', `generated characters: ${alphabets.join(', ')}`);

export function register(program: Command): void {
  const group = program
    .command('credentials')
    .alias('creds')
    .description('Create and manage credentials (values go in; they come out only through leases)');

  addDynamic(
    addGenerate(
      addValueSource(
        withCommon(
          group
            .command('create <name>')
            .description(
              'Create a credential; the value comes from a hidden prompt, stdin or a file, or is generated',
            )
            .requiredOption('--type <type>', `one of ${types.join(', ')}`)
            .option('--label <key=value>', 'a label (repeatable)', collect)
            .option('--default-ttl <duration>', 'lease TTL when none is asked for, e.g. 15m')
            .option('--max-ttl <duration>', 'longest lease this credential grants'),
        ),
      ),
    ),
  ).action(
    async (
      name: string,
      options: CommonOptions &
        ValueSourceOptions &
        GenerateOptions &
        DynamicOptions & { type: string; label?: string[]; defaultTtl?: string; maxTtl?: string },
    ) => {
      if (!types.includes(options.type as CredentialType))
        throw new UsageError(`--type must be one of ${types.join(', ')}`);
      const generate = generateSpec(options);
      if (generate && (options.valueStdin || options.valueFile)) {
        throw new UsageError('give a value (--value-stdin / --value-file) or --generate, not both');
      }
      const dynamic = dynamicSpec(options);
      if (dynamic && generate)
        throw new UsageError(
          `--dynamic ${dynamic.engine} takes the admin connection URL as the value (--value-stdin / --value-file), not --generate`,
        );
      const value = generate ? undefined : await readSecretValue(options, name);
      const vault = await connect(options);
      const labels = parseLabels(options.label);
      const credential = await vault.credentials.create({
        name,
        type: options.type as CredentialType,
        ...(value !== undefined && { value }),
        ...(generate && { generate }),
        ...(dynamic && { dynamic }),
        ...(labels && { metadata: labels }),
        ...((options.defaultTtl || options.maxTtl) && {
          leases: {
            ...(options.defaultTtl && { defaultTtl: options.defaultTtl }),
            ...(options.maxTtl && { maxTtl: options.maxTtl }),
          },
        }),
      });
      show(credential, options, credential.unchanged ? 'Unchanged (it exists with this value):' : 'Created');
    },
  );

  withCommon(
    group
      .command('list')
      .alias('ls')
      .description('List credentials (metadata only)')
      .option('--prefix <prefix>', 'only names starting with this')
      .option('--label <key=value>', 'only credentials with this label (repeatable)', collect),
  ).action(async (options: CommonOptions & { prefix?: string; label?: string[] }) => {
    const vault = await connect(options);
    const labels = parseLabels(options.label);
    const list = await vault.credentials.list({
      ...(options.prefix && { prefix: options.prefix }),
      ...(labels && { labels }),
    });
    if (options.json) return printJson(list.map(json));
    printTable(
      ['NAME', 'TYPE', 'VERSION', 'LABELS', 'UPDATED'],
      list.map((c) => [
        c.name,
        c.type,
        String(c.currentVersion),
        formatLabels(c.metadata) || '-',
        timeAgo(c.updatedAt),
      ]),
      'no credentials (create one with `vault credentials create NAME --type api-key`)',
    );
  });

  withCommon(
    group
      .command('update <name>')
      .description(
        "Replace a credential's labels and/or lease defaults (needs admin on it; the value is untouched). The labels given replace all its labels; --default-ttl and --max-ttl replace both lease defaults",
      )
      .option('--label <key=value>', 'a label (repeatable); the labels given replace all of them', collect)
      .option('--default-ttl <duration>', 'lease TTL when none is asked for, e.g. 15m')
      .option('--max-ttl <duration>', 'longest lease this credential grants'),
  ).action(
    async (
      name: string,
      options: CommonOptions & { label?: string[]; defaultTtl?: string; maxTtl?: string },
    ) => {
      const labels = parseLabels(options.label);
      if (!labels && !options.defaultTtl && !options.maxTtl)
        throw new UsageError('give --label (repeatable), --default-ttl or --max-ttl: nothing to update');
      const vault = await connect(options);
      const credential = await vault.credentials.update(name, {
        ...(labels && { metadata: labels }),
        ...((options.defaultTtl || options.maxTtl) && {
          leases: {
            ...(options.defaultTtl && { defaultTtl: options.defaultTtl }),
            ...(options.maxTtl && { maxTtl: options.maxTtl }),
          },
        }),
      });
      show(credential, options, 'Updated');
    },
  );

  withCommon(
    group.command('get <name>').description("A credential's metadata and versions (never the value)"),
  ).action(async (name: string, options: CommonOptions) => {
    show(await (await connect(options)).credentials.get(name), options);
  });

  withCommon(
    group
      .command('versions <name>')
      .description('Every version of a credential: number, time, fingerprint (never a value)'),
  ).action(async (name: string, options: CommonOptions) => {
    const versions = await (await connect(options)).credentials.versions(name);
    if (options.json) return printJson(versions.map((v) => ({ ...v, createdAt: v.createdAt.toISOString() })));
    printTable(
      ['VERSION', 'CREATED', 'FINGERPRINT'],
      versions.map((v) => [String(v.version), v.createdAt.toISOString(), v.fingerprint]),
    );
  });

  addValueSource(
    withCommon(
      group.command('put <name>').description('Store a new version from a hidden prompt, stdin or a file'),
    ),
  ).action(async (name: string, options: CommonOptions & ValueSourceOptions) => {
    const value = (await readSecretValue(options, name))!;
    show(await (await connect(options)).credentials.putVersion(name, value), options, 'Stored');
  });

  addGenerate(
    addValueSource(
      withCommon(
        group
          .command('rotate <name>')
          .description(
            'Rotate to a new version: generated unless a value is given; a dynamic credential changes its admin password in the database and keeps the new one',
          )
          .option(
            '--revoke-old-leases',
            'revoke leases of older versions now instead of letting them run out',
          ),
      ),
    ),
  ).action(
    async (
      name: string,
      options: CommonOptions & ValueSourceOptions & GenerateOptions & { revokeOldLeases?: boolean },
    ) => {
      const generate = generateSpec(options);
      const value = generate ? undefined : await readSecretValue(options, name, { optional: true });
      const vault = await connect(options);
      const credential = await vault.credentials.rotate(name, {
        ...(value !== undefined && { value }),
        ...(generate && { generate }),
        ...(options.revokeOldLeases && { revokeOldLeases: true }),
      });
      show(credential, options, 'Rotated');
    },
  );

  withCommon(
    group
      .command('delete <name>')
      .alias('rm')
      .description('Delete a credential and revoke its leases')
      .option('-y, --yes', 'do not ask for confirmation'),
  ).action(async (name: string, options: CommonOptions & { yes?: boolean }) => {
    if (!options.yes) {
      if (!process.stdin.isTTY)
        throw new UsageError(`deleting ${name} needs --yes when not run on a terminal`);
      const { createInterface } = await import('node:readline/promises');
      const rl = createInterface({ input: process.stdin, output: process.stderr });
      const answer = await rl.question(
        `Delete ${name} and revoke all its leases? Type the name to confirm: `,
      );
      rl.close();
      if (answer.trim() !== name) throw new UsageError('not confirmed; nothing deleted');
    }
    const result = await (await connect(options)).credentials.delete(name);
    if (options.json) return printJson({ deleted: name, ...result });
    process.stdout.write(
      `Deleted ${name}; revoked ${result.revoked} lease${result.revoked === 1 ? '' : 's'}.\n`,
    );
  });
}
