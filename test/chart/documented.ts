/**
 * Shell blocks of the docs, run as written: found under their heading, run with bash -e and
 * the test kubectl and helm on PATH, against the kubeconfig a test gives.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { resolveAssets } from '../support/assets.js';
import { type CommandResult, runCommand } from '../support/control-plane.js';
import { repoRoot } from './support.js';

/** The bodies of the ```sh blocks (any kind: `sh cluster`) of `file` in the section under `heading`. */
export function documentedBlocks(file: string, heading: string): string[] {
  const text = readFileSync(join(repoRoot, file), 'utf8');
  const at = text.indexOf(heading);
  if (at < 0) throw new Error(`${file} has no "${heading}"`);
  const level = /^#+/.exec(heading)?.[0];
  const rest = text.slice(at + heading.length);
  const end = level ? rest.search(new RegExp(`\\n${level} `)) : -1;
  const section = end < 0 ? rest : rest.slice(0, end);
  return [...section.matchAll(/```sh[^\n]*\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

/** The first ```sh block of `file` after `heading` (in its section or later). */
export function documentedBlock(file: string, heading: string): string {
  const text = readFileSync(join(repoRoot, file), 'utf8');
  const at = text.indexOf(heading);
  if (at < 0) throw new Error(`${file} has no "${heading}"`);
  const block = /```sh[^\n]*\n([\s\S]*?)```/.exec(text.slice(at));
  if (!block) throw new Error(`${file} has no sh block after "${heading}"`);
  return block[1]!;
}

/** Runs a documented block with bash -e in `cwd`, kubectl and helm on PATH, with `kubeconfig`. */
export async function runDocumented(kubeconfig: string, script: string, cwd: string): Promise<CommandResult> {
  const assets = resolveAssets();
  const home = mkdtempSync(join(tmpdir(), 'vault-doc-kubectl-'));
  try {
    return await runCommand(
      'bash',
      ['--norc', '--noprofile', '-euo', 'pipefail', '-c', `cd '${cwd}'\n${script}`],
      {
        timeoutMs: 180_000,
        env: {
          PATH: `${dirname(assets.kubectl)}:${dirname(assets.helm)}:${process.env.PATH}`,
          HOME: home,
          KUBECONFIG: kubeconfig,
          HELM_CACHE_HOME: join(home, 'cache'),
          HELM_CONFIG_HOME: join(home, 'config'),
          HELM_DATA_HOME: join(home, 'data'),
        },
      },
    );
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}
