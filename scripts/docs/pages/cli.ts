/**
 * The CLI reference, from the commander definitions: every file of src/cli that exports
 * `register(program)` (one per command group, as the program assembles them) registers onto
 * a fresh program, and commander's own Help class renders usage, arguments and options.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Command, type Help } from 'commander';
import { exitCodeTable } from '../../../src/cli/exit-codes.js';
import { code, generatedNotice, table, text } from '../markdown.js';

const cliDir = new URL('../../../src/cli/', import.meta.url).pathname;

/** The program with every command group registered, without parsing anything. */
export async function fullProgram(): Promise<Command> {
  // Configured as the real program is (src/cli/main.ts): options before a command are its own.
  const program = new Command('vault').enablePositionalOptions();
  const files = readdirSync(cliDir)
    .filter((file) => file.endsWith('.ts') && !file.endsWith('.test.ts'))
    .filter((file) => /^export function register\(/m.test(readFileSync(join(cliDir, file), 'utf8')))
    .sort();
  for (const file of files) {
    const module = (await import(pathToFileURL(join(cliDir, file)).href)) as {
      register: (program: Command) => void;
    };
    module.register(program);
  }
  return program;
}

/** Every command that does something (groups are headings, their subcommands rows). */
function commandSection(command: Command, help: Help, path: string[]): string[] {
  const name = [...path, command.name()].join(' ');
  const subcommands = help.visibleCommands(command).filter((c) => c.name() !== 'help');
  const options = help.visibleOptions(command).filter((o) => o.long !== '--help');
  const args = help.visibleArguments(command);
  const out: string[] = [];
  const depth = Math.min(path.length + 1, 4);
  const aliases = command.aliases();
  out.push(`${'#'.repeat(depth + 1)} ${code(name)}`, '');
  if (command.description()) out.push(text(command.description()), '');
  if (aliases.length) out.push(`Also: ${aliases.map((a) => code([...path, a].join(' '))).join(', ')}.`, '');
  if (subcommands.length === 0 || options.length > 0 || args.length > 0) {
    out.push('```', help.commandUsage(command), '```', '');
  }
  if (args.length) {
    out.push(
      table(
        ['argument', 'description'],
        args.map((arg) => [code(help.argumentTerm(arg)), text(help.argumentDescription(arg))]),
      ),
      '',
    );
  }
  if (options.length) {
    out.push(
      table(
        ['option', 'description'],
        options.map((option) => [code(help.optionTerm(option)), text(help.optionDescription(option))]),
      ),
      '',
    );
  }
  for (const sub of subcommands) out.push(...commandSection(sub, help, [...path, command.name()]));
  return out;
}

export async function cliPage(): Promise<string> {
  const program = await fullProgram();
  const help = program.createHelp();
  const sections = help
    .visibleCommands(program)
    .filter((c) => c.name() !== 'help')
    .sort((a, b) => a.name().localeCompare(b.name()))
    .flatMap((command) => commandSection(command, help, ['vault']));
  return [
    generatedNotice('the commander definitions in src/cli/*.ts'),
    '',
    '# CLI reference',
    '',
    'Every command, argument and option of `vault`, as `vault <command> --help` prints them. Connection settings for the client commands: `VAULT_ADDR` (default `http://127.0.0.1:8200`), `VAULT_TOKEN` or `VAULT_TOKEN_FILE` (else the token stored by `vault login`) and `VAULT_TENANT`; `--addr` and `--tenant` override them. A guided tour with examples: [the CLI guide](/guide/cli).',
    '',
    '## Exit codes',
    '',
    table(
      ['code', 'meaning'],
      exitCodeTable.map(([exit, meaning]) => [String(exit), text(meaning)]),
    ),
    '',
    '`vault run` and `vault broker` exit with the exit code of their command.',
    '',
    ...sections,
  ].join('\n');
}
