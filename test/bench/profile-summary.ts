/**
 * Summarizes a V8 .cpuprofile (from `node --cpu-prof`): self time by function and by module
 * (a package under node_modules, a folder of src/, or Node's internals), and inclusive time
 * of the project's own functions, so the top costs of a benchmark phase can be read quickly.
 *
 *   BENCH_ONLY=lease node --cpu-prof --cpu-prof-dir=/tmp/prof --import tsx test/bench/api.ts
 *   npx tsx test/bench/profile-summary.ts /tmp/prof/CPU.*.0.001.cpuprofile
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export function moduleOf(url: string): string {
  if (!url) return '(native/gc/idle)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  const src = /\/(src|test)\/([^/]+)\//.exec(url);
  if (src) return `${src[1]}/${src[2]}`;
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0]}`;
  return url.split('/').slice(-2).join('/');
}

export function summarize(profile: Profile, top = 25): string {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, index) => {
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[index] ?? 0));
  });
  const total = [...selfUs.values()].reduce((a, b) => a + b, 0);
  const label = (node: ProfileNode) => {
    const frame = node.callFrame;
    const where = frame.url
      ? `${frame.url.replace(/^.*\/(node_modules|src|test)\//, '$1/')}:${frame.lineNumber + 1}`
      : '';
    return `${frame.functionName || '(anonymous)'} ${where}`.trim();
  };
  const bySelf = new Map<string, number>();
  const byModule = new Map<string, number>();
  const inclusive = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const node = byId.get(id)!;
    bySelf.set(label(node), (bySelf.get(label(node)) ?? 0) + us);
    const module = moduleOf(node.callFrame.url) || node.callFrame.functionName;
    byModule.set(module, (byModule.get(module) ?? 0) + us);
    // Inclusive time of our own functions (each counted once per stack).
    const seen = new Set<string>();
    for (let current: number | undefined = id; current !== undefined; current = parent.get(current)) {
      const frame = byId.get(current)!;
      if (!/\/src\//.test(frame.callFrame.url) || /node_modules/.test(frame.callFrame.url)) continue;
      const name = label(frame);
      if (seen.has(name)) continue;
      seen.add(name);
      inclusive.set(name, (inclusive.get(name) ?? 0) + us);
    }
  }
  const table = (title: string, map: Map<string, number>, rows: number) => {
    const sorted = [...map.entries()].sort((a, b) => b[1] - a[1]).slice(0, rows);
    return [
      title,
      ...sorted.map(
        ([name, us]) =>
          `  ${((us / total) * 100).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(6)} ms  ${name}`,
      ),
    ].join('\n');
  };
  return [
    `profile: ${(total / 1e6).toFixed(2)} s sampled`,
    table('self time by module', byModule, top),
    table('self time by function', bySelf, top),
    table('inclusive time, project functions', inclusive, top),
  ].join('\n\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const file of process.argv.slice(2)) {
    console.log(`== ${file}`);
    console.log(summarize(JSON.parse(readFileSync(file, 'utf8')) as Profile));
  }
}
