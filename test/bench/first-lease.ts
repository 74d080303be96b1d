/**
 * Time to a first lease, following the docs as a new user would: `npm run bench:first-lease`.
 *
 * Each path runs the `sh runnable` blocks of its page verbatim, in order, command by command
 * (the same extraction CI runs, test/docs/runnable-blocks.ts, so the benchmark follows the page
 * as it is), on a fresh machine as far as npm can tell: a new HOME with an empty npm cache, the
 * packages of this checkout published to a local registry (Verdaccio, `npm_config_registry`)
 * that proxies every other package to the registry npm is configured with, and better-sqlite3's
 * prebuilt binary from its documented download mirror (`npm_config_better_sqlite3_binary_host`),
 * as a user's install downloads it from the project's releases. The clock runs from the first
 * command to the first lease's value in hand:
 *
 * - laptop: docs/guide/getting-started.md, through the block that prints a lease's value;
 * - claude-code: the quick start of docs/guide/claude-code.md (through
 *   `npx @ghoststack/vault-mcp init`), then what Claude Code does: a real MCP client starts the
 *   server `.mcp.json` names, lists the credentials, takes a lease with `request_lease` and has
 *   `run_with_credentials` hand the value to a command.
 *
 * Reading time is not counted. Before the timed runs, one untimed install fills the local
 * registry's store from upstream, so every path's cold run finds the registry answering as a
 * public one does. Then each path runs with an empty npm cache (cold), and again in a new HOME
 * with the npm cache the cold run filled (warm). It prints numbers and never fails on them;
 * it fails only when a documented command fails.
 *
 * Then `npm i -g @ghoststack/vault-cli` alone and with the Kubernetes client (which the package
 * installed before it became an optional peer), interleaved, each with an empty npm cache.
 *
 * Settings: BENCH_PATHS=laptop,claude-code; BENCH_WARM=0 skips the warm runs;
 * BENCH_INSTALL_ROUNDS (2; 0 skips the install comparison); BENCH_COMPILE=1
 * also times `npm i -g @ghoststack/vault-cli` without a prebuilt binary (better-sqlite3
 * compiles from source: minutes).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { kubernetesClientPackage } from '../../src/k8s/client-module.js';
import { type RunnableBlock, runnableBlocks } from '../docs/runnable-blocks.js';
import { freePort } from '../support/etcd.js';
import { type LocalRegistry, publishPackages, startRegistry } from '../support/registry.js';
import { repoRoot } from '../support/vault-dev.js';
import { agentTakesLease } from './first-lease/agent.js';
import { type TimedBlock, TimedTerminal } from './first-lease/timed-shell.js';

/** The value the pages store: the lease's value in hand is this. */
const documentedValue = 'sk_live_...';

interface Path {
  name: string;
  file: string;
  /** The last block to run: the one that hands over the first lease (laptop) or sets up the agent. */
  last: (block: RunnableBlock) => boolean;
  agent: boolean;
}

const paths: Path[] = [
  {
    name: 'laptop',
    file: 'docs/guide/getting-started.md',
    last: (block) => block.code.includes('node lease.mjs'),
    agent: false,
  },
  {
    name: 'claude-code',
    file: 'docs/guide/claude-code.md',
    last: (block) => block.code.includes('npx @ghoststack/vault-mcp init'),
    agent: true,
  },
];

interface Row {
  where: string;
  command: string;
  ms: number;
}

interface Run {
  rows: Row[];
  totalMs: number;
  /** How `npm i -g` got better-sqlite3: its prebuilt binary, or compiled (node-gyp leaves a Makefile). */
  sqlite: 'prebuilt' | 'compiled';
}

const seconds = (ms: number) => (ms / 1000).toFixed(1);
const load = () =>
  loadavg()
    .map((n) => n.toFixed(1))
    .join(' ');

/** A new user's environment: its own HOME, npm's global prefix in it, the local registry. */
function userEnv(home: string, registry: LocalRegistry, extra: Record<string, string> = {}) {
  return {
    PATH: `${join(home, '.npm-global/bin')}:${dirname(process.execPath)}:/usr/local/bin:/usr/bin:/bin`,
    HOME: home,
    LANG: 'C.UTF-8',
    TERM: 'dumb',
    ...registry.env,
    npm_config_prefix: join(home, '.npm-global'),
    ...extra,
  };
}

function blocksOf(path: Path): RunnableBlock[] {
  const all = runnableBlocks(path.file, readFileSync(join(repoRoot, path.file), 'utf8'));
  const last = all.findIndex(path.last);
  if (last < 0) throw new Error(`${path.file}: no block matches the end of the ${path.name} path`);
  return all.slice(0, last + 1);
}

async function runPath(path: Path, registry: LocalRegistry, home: string, npmCache?: string): Promise<Run> {
  mkdirSync(join(home, 'project'), { recursive: true });
  const env = userEnv(home, registry, {
    // `vault dev` without --port listens here instead of 8200, which may be taken on this machine.
    VAULT_DEV_PORT: String(await freePort()),
    ...(npmCache && { npm_config_cache: npmCache }),
  });
  const terminal = new TimedTerminal(join(home, 'project'), env);
  const rows: Row[] = [];
  const started = performance.now();
  try {
    let last: TimedBlock | undefined;
    for (const block of blocksOf(path)) {
      last = await terminal.run(block);
      for (const step of last.steps)
        rows.push({ where: `${block.file}:${step.line}`, command: step.text, ms: step.ms });
    }
    if (path.agent) {
      const shell = terminal.shell();
      const steps = await agentTakesLease(shell.cwd, shell.env, 'stripe-api-key', documentedValue);
      for (const step of steps) rows.push({ where: 'MCP client', command: step.text, ms: step.ms });
    } else if (!last?.output.includes(documentedValue)) {
      throw new Error(`${path.file}: the lease block printed no value; its output:\n${last?.output}`);
    }
    const totalMs = performance.now() - started;
    const build = join(
      home,
      '.npm-global/lib/node_modules/@ghoststack/vault-cli/node_modules/better-sqlite3/build',
    );
    return { rows, totalMs, sqlite: existsSync(join(build, 'Makefile')) ? 'compiled' : 'prebuilt' };
  } finally {
    await terminal.stop();
  }
}

/** Runs a shell command as the user; never blocks, since the binary mirror runs in this process. */
async function asUser(command: string, cwd: string, env: Record<string, string>): Promise<number> {
  const started = performance.now();
  const child = spawn('bash', ['-c', command], { cwd, env, stdio: ['ignore', 'inherit', 'inherit'] });
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (code !== 0) throw new Error(`${command} exited ${code}`);
  return performance.now() - started;
}

/** Installs what the paths install, untimed, so the registry's store holds it all. */
function fillRegistry(registry: LocalRegistry, home: string): Promise<number> {
  mkdirSync(join(home, 'app'), { recursive: true });
  return asUser(
    'npm i -g @ghoststack/vault-cli @ghoststack/vault-mcp >/dev/null && cd app && npm init -y >/dev/null && npm i @ghoststack/vault-sdk >/dev/null',
    home,
    userEnv(home, registry),
  );
}

/**
 * `npm i -g @ghoststack/vault-cli` with an empty npm cache, side by side (interleaved) with the
 * same plus the Kubernetes client, which the CLI package installed until it became an optional
 * peer (what it costs a platform user who adds it).
 */
async function installSideBySide(registry: LocalRegistry, work: string, rounds: number) {
  const times: Record<'cli' | 'withKubernetes', number[]> = { cli: [], withKubernetes: [] };
  for (let round = 0; round < rounds; round++) {
    for (const variant of ['cli', 'withKubernetes'] as const) {
      const home = join(work, `install-${variant}-${round}`);
      mkdirSync(home, { recursive: true });
      const extra = variant === 'cli' ? '' : ` ${kubernetesClientPackage}`;
      times[variant].push(
        await asUser(`npm i -g @ghoststack/vault-cli${extra} >/dev/null`, home, userEnv(home, registry)),
      );
      rmSync(home, { recursive: true, force: true });
    }
  }
  const median = (values: number[]) => {
    const sorted = [...values].sort((a, b) => a - b);
    const middle = sorted.length / 2;
    return Number.isInteger(middle)
      ? (sorted[middle - 1]! + sorted[middle]!) / 2
      : sorted[Math.floor(middle)]!;
  };
  const cli = median(times.cli);
  const withKubernetes = median(times.withKubernetes);
  console.log(
    `npm i -g, empty npm cache, ${rounds} interleaved rounds (median; load average now ${load()}):`,
  );
  console.table([
    { install: '@ghoststack/vault-cli', s: seconds(cli), ratio: '1.00' },
    {
      install: `@ghoststack/vault-cli ${kubernetesClientPackage}`,
      s: seconds(withKubernetes),
      ratio: (withKubernetes / cli).toFixed(2),
    },
  ]);
}

/** `npm i -g @ghoststack/vault-cli` where no prebuilt better-sqlite3 can be downloaded. */
function installCompiling(registry: LocalRegistry, home: string): Promise<number> {
  mkdirSync(home, { recursive: true });
  return asUser(
    'npm install -g @ghoststack/vault-cli',
    home,
    userEnv(home, registry, { npm_config_better_sqlite3_binary_host: 'http://127.0.0.1:9' }),
  );
}

async function main() {
  const only = (process.env.BENCH_PATHS ?? 'laptop,claude-code').split(',');
  const warm = process.env.BENCH_WARM !== '0';
  const work = mkdtempSync(join(tmpdir(), 'vault-bench-first-lease-'));
  const registry = await startRegistry();
  try {
    const started = performance.now();
    publishPackages(registry, ['sdk', 'mcp', 'cli']);
    console.log(
      `packages built and published to the local registry in ${seconds(performance.now() - started)} s`,
    );
    console.log(
      `registry store filled from upstream (untimed for the paths) in ${seconds(await fillRegistry(registry, join(work, 'fill')))} s`,
    );
    console.log(`load average at start: ${load()} (${process.env.BENCH_NOTE ?? '2 shared cores'})\n`);

    for (const path of paths.filter((p) => only.includes(p.name))) {
      const coldHome = join(work, `${path.name}-cold`);
      const cold = await runPath(path, registry, coldHome);
      const again = warm
        ? await runPath(path, registry, join(work, `${path.name}-warm`), join(coldHome, '.npm'))
        : undefined;
      console.log(`${path.name}: ${path.file}${path.agent ? ' + a Claude Code-like MCP client' : ''}`);
      console.table(
        cold.rows.map((row, i) => ({
          where: row.where,
          command: row.command.length > 64 ? `${row.command.slice(0, 61)}...` : row.command,
          'cold npm cache s': seconds(row.ms),
          ...(again && { 'warm npm cache s': seconds(again.rows[i]?.ms ?? Number.NaN) }),
        })),
      );
      console.log(
        `${path.name}: first command to the first lease's value in hand: ${seconds(cold.totalMs)} s cold` +
          `${again ? `, ${seconds(again.totalMs)} s warm` : ''} (better-sqlite3 ${cold.sqlite}; load average now ${load()})\n`,
      );
    }

    const rounds = Number(process.env.BENCH_INSTALL_ROUNDS ?? 2);
    if (rounds > 0) await installSideBySide(registry, work, rounds);

    if (process.env.BENCH_COMPILE === '1') {
      const ms = await installCompiling(registry, join(work, 'compile'));
      console.log(`npm i -g @ghoststack/vault-cli compiling better-sqlite3 from source: ${seconds(ms)} s`);
    }
  } finally {
    await registry.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
