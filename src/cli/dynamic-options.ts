/**
 * The flags of `vault credentials create --dynamic ENGINE`: what each lease's own upstream
 * account may do (PostgreSQL statements, Redis ACL rules), from flags or a file.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { DynamicSpec } from '../sdk/index.js';
import { collect } from './context.js';
import { UsageError } from './exit-codes.js';

const engines = ['postgres', 'redis'] as const;

export interface DynamicOptions {
  dynamic?: string;
  statement?: string[];
  statementsFile?: string;
  scramIterations?: string;
  aclRule?: string[];
}

export const addDynamic = (command: Command) =>
  command
    .option(
      '--dynamic <engine>',
      `issue each lease its own upstream account (${engines.join(', ')}); the value is then the admin connection URL`,
    )
    .option(
      '--statement <sql>',
      'postgres: a statement run for each lease as the admin, {{name}} being its role (repeatable, in order)',
      collect,
    )
    .option(
      '--statements-file <path>',
      'postgres: statements from a file, each ending with ";" at the end of a line',
    )
    .option(
      '--scram-iterations <n>',
      "postgres: PBKDF2 iterations of each lease's SCRAM verifier (default 4096; fewer issue faster, if every client accepts them)",
    )
    .option(
      '--acl-rule <rule>',
      "redis: an ACL rule for each lease's user, e.g. ~cache:* or +get (repeatable)",
      collect,
    );

/**
 * Splits a statements file: a statement ends with ";" at the end of a line, so a ";" inside a
 * quoted string or mid-line stays (and the server refuses a line that hides two statements).
 * Chunks holding only blank lines and `--` comments are dropped.
 */
export function splitStatements(text: string): string[] {
  const statements: string[] = [];
  let current: string[] = [];
  const flush = () => {
    const statement = current.join('\n').trim();
    const meaningful = current.some((line) => line.trim() !== '' && !line.trim().startsWith('--'));
    if (meaningful) statements.push(statement);
    current = [];
  };
  for (const line of text.split(/\r?\n/)) {
    if (/;\s*$/.test(line)) {
      current.push(line.replace(/;\s*$/, ''));
      flush();
    } else current.push(line);
  }
  flush();
  return statements;
}

/** The engine spec the flags describe, or undefined without `--dynamic`. */
export function dynamicSpec(options: DynamicOptions): DynamicSpec | undefined {
  const postgresFlags =
    options.statement !== undefined ||
    options.statementsFile !== undefined ||
    options.scramIterations !== undefined;
  if (!options.dynamic) {
    if (postgresFlags || options.aclRule)
      throw new UsageError(
        '--statement, --statements-file, --scram-iterations and --acl-rule need --dynamic postgres or redis',
      );
    return undefined;
  }
  if (options.dynamic === 'postgres') {
    if (options.aclRule) throw new UsageError('--acl-rule is for --dynamic redis');
    const statements = [...(options.statement ?? [])];
    if (options.statementsFile !== undefined) {
      let text: string;
      try {
        text = readFileSync(options.statementsFile, 'utf8');
      } catch (err) {
        throw new UsageError(
          `cannot read --statements-file ${options.statementsFile}: ${(err as Error).message}`,
        );
      }
      statements.push(...splitStatements(text));
    }
    if (statements.length === 0)
      throw new UsageError(
        '--dynamic postgres needs what each lease may do: --statement "GRANT SELECT ON orders TO {{name}}" or --statements-file',
      );
    const iterations = options.scramIterations;
    if (iterations !== undefined && !/^[1-9][0-9]{0,5}$/.test(iterations))
      throw new UsageError(`--scram-iterations must be a whole number from 1 to 100000, not "${iterations}"`);
    return {
      engine: 'postgres',
      creationStatements: statements,
      ...(iterations !== undefined ? { scramIterations: Number(iterations) } : {}),
    };
  }
  if (options.dynamic === 'redis') {
    if (postgresFlags)
      throw new UsageError(
        '--statement, --statements-file and --scram-iterations are for --dynamic postgres',
      );
    if (!options.aclRule?.length)
      throw new UsageError(
        "--dynamic redis needs each lease's ACL rules: --acl-rule '~cache:*' --acl-rule +get",
      );
    return { engine: 'redis', aclRules: options.aclRule };
  }
  throw new UsageError(`--dynamic must be one of ${engines.join(', ')}, not "${options.dynamic}"`);
}

/** Lines for `credentials get`: the engine and what each lease's account may do. */
export function describeDynamic(spec: DynamicSpec | undefined): Array<[string, string | undefined]> {
  if (!spec) return [];
  if (spec.engine === 'postgres')
    return [
      ['engine', 'postgres (one role per lease)'],
      ['statements', spec.creationStatements.join('; ')],
      ...(spec.scramIterations !== undefined
        ? [['scram iterations', String(spec.scramIterations)] as [string, string]]
        : []),
    ];
  return [
    ['engine', 'redis (one ACL user per lease)'],
    ['acl rules', spec.aclRules.join(' ')],
  ];
}
