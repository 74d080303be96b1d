/**
 * CLI start-up benchmark: `npm run bench:cli`. Runs the compiled CLI package as `npm i -g`
 * installs it (packages/cli/dist, plain Node, no tsx) and times, interleaved in one run:
 *
 * - `node -e 0`: Node's own start-up, the floor every command pays;
 * - `vault --version` (target: under 150 ms on an idle machine);
 * - `vault --help` (target: under 300 ms on an idle machine);
 * - `vault credentials --help`: one client command group loaded.
 *
 * On a busy machine every row slows down together; the overhead over `node -e 0` is what
 * the CLI itself costs. Builds packages/cli first when its dist is missing or older than src.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../support/vault-dev.js';

const runs = Number(process.env.BENCH_RUNS ?? 25);
const packageDir = join(repoRoot, 'packages/cli');
const bin = join(packageDir, 'dist/cli/main.js');

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) newest = Math.max(newest, statSync(join(entry.parentPath, entry.name)).mtimeMs);
  }
  return newest;
}

if (!existsSync(bin) || statSync(bin).mtimeMs < newestMtime(join(repoRoot, 'src'))) {
  process.stderr.write('building packages/cli ...\n');
  execFileSync('npm', ['run', '--silent', 'build'], {
    cwd: packageDir,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}

const cases: { name: string; args: string[]; target?: number }[] = [
  { name: 'node -e 0', args: ['-e', '0'] },
  { name: 'vault --version', args: [bin, '--version'], target: 150 },
  { name: 'vault --help', args: [bin, '--help'], target: 300 },
  { name: 'vault credentials --help', args: [bin, 'credentials', '--help'] },
];

const samples = new Map<string, number[]>(cases.map((c) => [c.name, []]));
const env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' };
for (let i = 0; i < runs + 2; i++) {
  for (const c of cases) {
    const started = performance.now();
    const result = spawnSync(process.execPath, c.args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    const elapsed = performance.now() - started;
    if (result.status !== 0) throw new Error(`${c.name} exited ${result.status}: ${result.stderr}`);
    if (i >= 2) samples.get(c.name)!.push(elapsed); // two warm-up rounds fill the page cache
  }
}

const quantile = (values: number[], q: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? Number.NaN;
};
const baseline = quantile(samples.get('node -e 0')!, 0.5);
const rows = cases.map((c) => {
  const values = samples.get(c.name)!;
  const median = quantile(values, 0.5);
  return {
    command: c.name,
    'median ms': median.toFixed(1),
    'p90 ms': quantile(values, 0.9).toFixed(1),
    'min ms': Math.min(...values).toFixed(1),
    'over node -e 0': c.args[0] === '-e' ? '' : `+${(median - baseline).toFixed(1)} ms`,
    'x node -e 0': (median / baseline).toFixed(2),
    target: c.target ? `< ${c.target} ms idle` : '',
  };
});
console.log(`vault CLI start-up, ${runs} interleaved runs each (load average ${readLoad()})`);
console.table(rows);

function readLoad(): string {
  try {
    return execFileSync('cat', ['/proc/loadavg'], { encoding: 'utf8' }).split(' ').slice(0, 3).join(' ');
  } catch {
    return 'unknown';
  }
}
