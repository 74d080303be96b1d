/**
 * `vault --help` is drawn from src/cli/command-index.ts so that it loads no command group;
 * this checks that table against what the groups register, and that help and --version load
 * nothing else (the benchmark `npm run bench:cli` measures their time).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, Help } from 'commander';
import { describe, expect, it } from 'vitest';
import { commandGroups } from '../../src/cli/command-index.js';
import { repoRoot, vaultBin } from '../support/vault-dev.js';

describe('vault --help', () => {
  it('lists every command exactly as its group registers it', async () => {
    const help = new Help();
    for (const group of commandGroups) {
      const program = new Command('vault').enablePositionalOptions();
      (await group.load()).register(program);
      const registered = program.commands.map((command) => ({
        name: command.name(),
        aliases: command.aliases(),
        term: help.subcommandTerm(command),
        description: command.description(),
      }));
      expect(registered).toEqual(group.commands.map((summary) => ({ aliases: [], ...summary })));
    }
  }, 60_000);

  it('--version prints the package version; help GROUP and unknown commands still work', () => {
    const vault = (...args: string[]) =>
      spawnSync(process.execPath, [vaultBin, ...args], { cwd: repoRoot, encoding: 'utf8' });
    const version = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')).version;
    expect(vault('--version').stdout).toBe(`${version}\n`);
    expect(vault('-V').stdout).toBe(`${version}\n`);
    const top = vault('--help');
    expect(top.status).toBe(0);
    for (const group of commandGroups) for (const c of group.commands) expect(top.stdout).toContain(c.term);
    const dev = vault('help', 'dev');
    expect(dev.stdout).toMatch(/Usage: vault dev \[options\]/);
    expect(dev.stdout).toContain('--export-file');
    const unknown = vault('credentails');
    expect(unknown.status).toBe(1);
    expect(unknown.stderr).toMatch(/unknown command 'credentails'[\s\S]*credentials/);
  }, 60_000);
});
