/** The `vault agent` command alone, bundled as the benchmarks run it (never into ./dist). */
import { join } from 'node:path';
import { repoRoot } from '../support/vault-dev.js';

export const benchCache = join(repoRoot, 'node_modules/.cache/vault-bench');

/** Bundles `vault agent` into the benchmarks' cache; its path. */
export async function bundleAgent(): Promise<string> {
  const { build } = await import('esbuild');
  const bundle = join(benchCache, 'agent.mjs');
  await build({
    stdin: {
      contents:
        "import { Command } from 'commander'; import { register } from './src/cli/agent.ts'; const p = new Command('vault'); register(p); await p.parseAsync(process.argv);",
      resolveDir: repoRoot,
      loader: 'ts',
    },
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    outfile: bundle,
    logLevel: 'error',
  });
  return bundle;
}
