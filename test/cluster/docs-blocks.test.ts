/**
 * Every `sh cluster-runnable` block of the docs, run as written on the real-node cluster
 * (test/cluster/cluster.sh), as a platform team and an app team would type them: each page in a
 * terminal of its own (shell variables and the working directory carry over between its
 * blocks; background `kubectl port-forward ... &` keep running until the page ends), pages in
 * `pageOrder`, one after another on the same cluster. What a reader has before they start (a
 * cluster, a checkout, the images in their registry, a machine whose ports are free) is
 * provided by reader-machine.ts; what a page assumes beyond that is in its hidden
 * `<!-- sh cluster-runnable` blocks.
 *
 * It also times the Helm path of a new user: from `helm install` to an app pod that has read its
 * first leased credential file, following docs/platform/helm.md's install and
 * docs/kubernetes/index.md verbatim. It prints the number and never fails on it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Terminal } from '../docs/block-runner.js';
import { collectRunnableBlocks, type RunnableBlock } from '../docs/runnable-blocks.js';
import { type Cluster, clusterUnavailable, startCluster } from '../support/cluster.js';
import { repoRoot } from '../support/vault-dev.js';
import { provideImages, type ReaderMachine, readerMachine } from './reader-machine.js';

const minute = 60_000;

/**
 * The order a platform team and then an app team follow: install, use, operate, back up and
 * restore, uninstall. README.md's blocks are copies of helm.md's and run there.
 */
const pageOrder = [
  'docs/platform/helm.md',
  'docs/kubernetes/index.md',
  'docs/kubernetes/injection.md',
  'docs/operations/runbooks.md',
  'docs/platform/backup-restore.md',
  'docs/platform/uninstall.md',
];

const blocks = collectRunnableBlocks(repoRoot, 'cluster-runnable');
const pagesWithBlocks = [...new Set(blocks.map((block) => block.file))];

/** Where the new user's Helm path starts and ends: the first `helm install`, the app's file. */
const firstLeasePath = {
  install: (block: RunnableBlock) =>
    block.file === 'docs/platform/helm.md' && block.code.includes('helm install'),
  read: (block: RunnableBlock) =>
    block.file === 'docs/kubernetes/index.md' && block.code.includes('/vault/secrets'),
};

/** The line of the first `## ` heading of a page after `line` (where that section ends). */
function sectionEnd(file: string, line: number): number {
  const lines = readFileSync(join(repoRoot, file), 'utf8').split('\n');
  const at = lines.findIndex((text, i) => i >= line && text.startsWith('## '));
  return at < 0 ? lines.length + 1 : at + 1;
}

describe('docs: sh cluster-runnable blocks', () => {
  it('every page with sh cluster-runnable blocks has its place in the run, and README.md copies helm.md', () => {
    expect(
      pagesWithBlocks.filter((page) => !pageOrder.includes(page)),
      "add the page to pageOrder (README.md: keep its blocks identical to helm.md's)",
    ).toEqual([]);
    expect(pageOrder.filter((page) => !pagesWithBlocks.includes(page))).toEqual([]);
  });
});

describe.skipIf(clusterUnavailable())('docs: sh cluster-runnable blocks on the real cluster', () => {
  let cluster: Cluster;
  let reader: ReaderMachine;
  const durations = new Map<RunnableBlock, number>();
  const started = new Map<RunnableBlock, number>();

  beforeAll(async () => {
    cluster = await startCluster();
    await provideImages(cluster);
    reader = await readerMachine(cluster);
  }, 100 * minute);

  afterAll(async () => {
    await reader?.stop();
    await cluster?.stop();
  }, 5 * minute);

  for (const page of pageOrder) {
    it(
      `${page} runs as written`,
      async () => {
        const terminal = new Terminal({
          cwd: reader.work,
          env: reader.env,
          prefix: reader.prefix,
          blockTimeoutMs: 15 * minute,
          onOutput: process.env.VAULT_DOCS_VERBOSE ? (chunk) => process.stdout.write(chunk) : undefined,
        });
        try {
          for (const block of blocks.filter((b) => b.file === page)) {
            started.set(block, Date.now());
            await terminal.run(block);
            durations.set(block, Date.now() - started.get(block)!);
          }
        } catch (err) {
          const pods = await cluster.kubectl(['get', 'pods', '-A', '-o', 'wide']);
          throw new Error(`${(err as Error).message}\npods:\n${pods.stdout}`);
        } finally {
          await terminal.stop();
        }
      },
      40 * minute,
    );
  }

  it('prints how long the Helm path takes from helm install to a first leased file', () => {
    const install = blocks.find(firstLeasePath.install)!;
    const read = blocks.find(firstLeasePath.read)!;
    expect(install, 'docs/platform/helm.md has no helm install block').toBeDefined();
    expect(read, 'docs/kubernetes/index.md has no block that reads /vault/secrets').toBeDefined();
    // The path a new user follows: helm.md's Install section, then the Kubernetes page up to
    // the read; the blocks run in between (upgrade, TLS checks) are not part of it.
    const installEnds = sectionEnd(install.file, install.line);
    const path = blocks.filter(
      (b) =>
        (b.file === install.file && b.line >= install.line && b.line < installEnds) ||
        (b.file === read.file && b.line <= read.line),
    );
    const ms = path.reduce((sum, b) => sum + (durations.get(b) ?? Number.NaN), 0);
    const wall = started.get(read)! + durations.get(read)! - started.get(install)!;
    console.log(
      `[bench] docs Helm path, helm install → app read its first leased file: ${(ms / 1000).toFixed(1)} s ` +
        `(${path.length} blocks of helm.md "Install" and kubernetes/index.md; wall clock with the blocks between: ${(wall / 1000).toFixed(1)} s)`,
    );
  });
});
