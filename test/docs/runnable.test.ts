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
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EtcdProcess, freePort, startEtcd } from '../support/etcd.js';
import { type Postgres, startPostgres } from '../support/postgres.js';
import { type LocalRegistry, publishPackages, startRegistry } from '../support/registry.js';
import { repoRoot } from '../support/vault-dev.js';
import { Terminal } from './block-runner.js';
import { collectRunnableBlocks, runnableBlocks } from './runnable-blocks.js';

const blockTimeoutMs = 20 * 60_000; // `npm i -g` builds a native module; slow on a busy machine

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

  it('reads sh cluster-runnable blocks and the yaml files to save of their pages, for that kind only', () => {
    const text = [
      '```yaml',
      '# save as app.yaml',
      'kind: Pod',
      '```',
      '```yaml',
      'kind: NotSaved',
      '```',
      '```sh runnable',
      'vault whoami',
      '```',
      '<!-- sh cluster-runnable',
      'kubectl create namespace my-app',
      '-->',
      '```sh cluster-runnable',
      'kubectl apply -f app.yaml',
      '```',
    ].join('\n');
    expect(runnableBlocks('x.md', text, 'cluster-runnable')).toEqual([
      {
        file: 'x.md',
        line: 1,
        code: "cat > 'app.yaml' <<'VAULT_DOCS_EOF'\n# save as app.yaml\nkind: Pod\nVAULT_DOCS_EOF\n",
        saves: 'app.yaml',
      },
      { file: 'x.md', line: 11, code: 'kubectl create namespace my-app\n' },
      { file: 'x.md', line: 14, code: 'kubectl apply -f app.yaml\n' },
    ]);
    expect(runnableBlocks('x.md', text).map((b) => b.line)).toEqual([1, 8]);
    // A page without blocks of the kind saves nothing for it.
    expect(runnableBlocks('y.md', text.split('```sh runnable')[0]!)).toEqual([]);
  });
});

describe('docs: sh runnable blocks, in order', () => {
  const blocks = collectRunnableBlocks(repoRoot);
  let registry: LocalRegistry;
  let home: string;
  let terminal: Terminal | undefined;
  let postgres: Postgres | undefined;
  let etcd: EtcdProcess | undefined;

  beforeAll(async () => {
    home = mkdtempSync(join(tmpdir(), 'vault-docs-home-'));
    mkdirSync(join(home, 'work'));
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
    await terminal?.stop();
    await Promise.all([registry?.stop(), postgres?.close(), etcd?.destroy()]);
    if (home) rmSync(home, { recursive: true, force: true });
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
    terminal = new Terminal({
      cwd: join(home, 'work'),
      blockTimeoutMs,
      env: {
        PATH: `${join(home, '.npm-global/bin')}:${join(repoRoot, 'bin')}:${process.env.PATH ?? '/usr/bin:/bin'}`,
        HOME: home,
        LANG: 'C.UTF-8',
        TERM: 'dumb',
        ...registry.env,
        npm_config_prefix: join(home, '.npm-global'),
        npm_config_cache: join(homedir(), '.npm'), // tarballs by integrity; the registry is still asked
        // `vault dev` without --port listens here instead of 8200, which may be taken on a shared machine.
        VAULT_DEV_PORT: String(await freePort()),
        VAULT_DOCS_POSTGRES_URL: postgres!.adminUrl,
        VAULT_DOCS_ETCD_ENDPOINT: etcd!.endpoint,
      },
    });
    for (const block of blocks) await terminal.run(block);
  }, 3_600_000);
});
