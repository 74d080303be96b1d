/**
 * Every `sh runnable` block of the docs (see runnable-blocks.ts and CONTRIBUTING.md), run as
 * written, in order, as a new user would: a fresh home directory, the packages published to a
 * local npm registry that `npm` and `npx` use (so `npm i -g @ghoststack/vault-cli` and `npx
 * @ghoststack/vault-mcp init` install what this checkout builds), and the repository's bin/ on
 * PATH. Each block runs in bash with `-e -o pipefail`; exported variables and the working
 * directory carry over to the next block, as in one terminal. A failure names the file and line
 * of the command that failed. Every process the blocks started (a detached `vault dev` too) is
 * stopped at the end.
 *
 * What a reader already has before a page starts is provided here and named in the environment,
 * for the page's hidden `<!-- sh runnable` blocks to turn into what the reader would have: a real
 * PostgreSQL (`VAULT_DOCS_POSTGRES_URL`, a superuser's URL) and a real etcd
 * (`VAULT_DOCS_ETCD_ENDPOINT`, plain HTTP on loopback).
 */
import { spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EtcdProcess, freePort, startEtcd } from '../support/etcd.js';
import { type Postgres, startPostgres } from '../support/postgres.js';
import { type LocalRegistry, publishPackages, startRegistry } from '../support/registry.js';
import { repoRoot } from '../support/vault-dev.js';
import { collectRunnableBlocks, type RunnableBlock, runnableBlocks } from './runnable-blocks.js';

const blockTimeoutMs = 20 * 60_000; // `npm i -g` builds a native module; slow on a busy machine

const prelude = (state: string) =>
  [
    `cd "$(cat '${state}/cwd')"`,
    `if [ -f '${state}/env' ]; then . '${state}/env'; fi`,
    `trap 'echo "$LINENO" > "${state}/failed-line"' ERR`,
    'set -e -o pipefail',
  ].join('\n');
const epilogue = (state: string) => `export -p > '${state}/env'\npwd > '${state}/cwd'\n`;

/** Every process whose environment carries this run's marker, e.g. a detached `vault dev`. */
function processesOf(marker: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/environ`, 'latin1').split('\0').includes(marker))
        pids.push(Number(entry));
    } catch {}
  }
  return pids;
}

describe('runnable-blocks', () => {
  it('finds sh runnable blocks, shown and hidden, with their line, and nothing else', () => {
    const text = [
      '# T',
      '```sh',
      'no',
      '```',
      '',
      '```sh runnable',
      'echo a',
      'echo b',
      '```',
      '  ```sh runnable',
      '  echo c',
      '  ```',
      '<!-- a comment -->',
      '<!-- sh runnable',
      'echo d > "$(mktemp)"',
      '-->',
      '```sh cluster',
      'kubectl get pods',
      '```',
    ].join('\n');
    expect(runnableBlocks('x.md', text)).toEqual([
      { file: 'x.md', line: 6, code: 'echo a\necho b\n' },
      { file: 'x.md', line: 10, code: 'echo c\n' },
      { file: 'x.md', line: 14, code: 'echo d > "$(mktemp)"\n' },
    ]);
    expect(() => runnableBlocks('y.md', '```sh runnable\necho')).toThrow(
      'y.md:1: a sh runnable block is never closed',
    );
    expect(() => runnableBlocks('z.md', 'a\n<!-- sh runnable\necho\n```')).toThrow(
      'z.md:2: a sh runnable block is never closed',
    );
  });
});

describe('docs: sh runnable blocks, in order', () => {
  const blocks = collectRunnableBlocks(repoRoot);
  let registry: LocalRegistry;
  let home: string;
  let state: string;
  let marker: string;
  let postgres: Postgres | undefined;
  let etcd: EtcdProcess | undefined;

  beforeAll(async () => {
    home = mkdtempSync(join(tmpdir(), 'vault-docs-home-'));
    state = mkdtempSync(join(tmpdir(), 'vault-docs-state-'));
    marker = `VAULT_DOCS_RUN=${state}`;
    mkdirSync(join(home, 'work'));
    writeFileSync(join(state, 'cwd'), join(home, 'work'));
    // Assigned as each comes up, so afterAll stops those that started when another did not.
    await Promise.all([
      startRegistry().then((started) => {
        registry = started;
      }),
      startPostgres().then((started) => {
        postgres = started;
      }),
      startEtcd().then((started) => {
        etcd = started;
      }),
    ]);
    publishPackages(registry, ['sdk', 'mcp', 'cli']);
  }, 1_800_000);

  afterAll(async () => {
    for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
      for (const pid of marker ? processesOf(marker) : []) {
        try {
          process.kill(pid, signal);
        } catch {}
      }
      await new Promise((resolve) => setTimeout(resolve, 2_000));
    }
    await Promise.all([registry?.stop(), postgres?.close(), etcd?.destroy()]);
    for (const dir of [home, state]) if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the quick starts (Getting Started, CLI, SDK, Claude Code) are marked runnable', () => {
    const files = new Set(blocks.map((b) => b.file));
    for (const file of [
      'docs/guide/getting-started.md',
      'docs/guide/cli.md',
      'docs/guide/sdk.md',
      'docs/guide/claude-code.md',
    ]) {
      expect(files, `${file} has no sh runnable block`).toContain(file);
    }
  });

  it('every block runs as written', async () => {
    const env: Record<string, string> = {
      PATH: `${join(home, '.npm-global/bin')}:${join(repoRoot, 'bin')}:${process.env.PATH ?? '/usr/bin:/bin'}`,
      HOME: home,
      LANG: 'C.UTF-8',
      TERM: 'dumb',
      ...registry.env,
      npm_config_prefix: join(home, '.npm-global'),
      npm_config_cache: join(homedir(), '.npm'), // tarballs by integrity; the registry is still asked
      VAULT_DOCS_RUN: state,
      // `vault dev` without --port listens here instead of 8200, which may be taken on a shared machine.
      VAULT_DEV_PORT: String(await freePort()),
      VAULT_DOCS_POSTGRES_URL: postgres!.adminUrl,
      VAULT_DOCS_ETCD_ENDPOINT: etcd!.endpoint,
    };
    const preludeLines = prelude(state).split('\n').length;
    for (const block of blocks) await runBlock(block, env, preludeLines);
  }, 3_600_000);

  async function runBlock(block: RunnableBlock, env: Record<string, string>, preludeLines: number) {
    rmSync(join(state, 'failed-line'), { force: true });
    const script = `${prelude(state)}\n${block.code}${epilogue(state)}`;
    const child = spawn('bash', ['--norc', '--noprofile', '-c', script], {
      env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const keep = (chunk: Buffer) => {
      output = (output + chunk.toString('utf8')).slice(-8_000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), blockTimeoutMs);
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    clearTimeout(timer);
    if (code === 0) return;
    const failedLine = existsSync(join(state, 'failed-line'))
      ? Number(readFileSync(join(state, 'failed-line'), 'utf8')) - preludeLines
      : undefined;
    const where =
      failedLine !== undefined && failedLine >= 1
        ? `${block.file}:${block.line + failedLine} (${block.code.split('\n')[failedLine - 1]?.trim()})`
        : `${block.file}:${block.line}`;
    throw new Error(
      `${where}: the sh runnable block exited ${code ?? 'on a signal'}; its output ends:\n${output}`,
    );
  }
});
