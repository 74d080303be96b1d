/**
 * The shell blocks of the docs and which of them CI runs as written. Two kinds run:
 *
 * - `sh runnable`: against `vault dev` on the CI machine (test/docs/runnable.test.ts), all
 *   pages one after another as in one terminal;
 * - `sh cluster-runnable`: against the real-node Kubernetes cluster with the chart's image
 *   (test/cluster/docs-blocks.test.ts), each page in a terminal of its own.
 *
 * A hidden block of either kind is an HTML comment that opens with the line `<!-- sh KIND` and
 * closes with a line `-->` (setup a reader already has, such as a database's admin URL in a
 * file; the site does not show it). A ```yaml block whose first line is `# save as FILE` is a
 * file the reader saves: on a page with blocks of a kind, it is written to FILE in the current
 * directory at its place, as a block of that kind. Every other `sh`/`bash` block must say why it
 * cannot run, with one of `nonRunnableKinds` (`sh placeholder`, ...). Files in path order
 * (docs/ before README.md), blocks in file order; a block of README.md that a docs file already
 * has runs once.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

export interface RunnableBlock {
  /** Repository-relative path of the Markdown file. */
  file: string;
  /** 1-based line of the opening fence (or of `<!-- sh runnable`). */
  line: number;
  code: string;
  /** For a ```yaml block to save as a file: the file name. */
  saves?: string;
}

/** The kinds of shell block CI runs, and where; the info string is `sh <kind>`. */
export const runnableKinds = {
  runnable: 'runs against vault dev (test/docs/runnable.test.ts)',
  'cluster-runnable': 'runs against the real-node cluster (test/cluster/docs-blocks.test.ts)',
  'two-clusters':
    'runs as written against two real control planes, the chart run as processes (test/chart/second-cluster.test.ts)',
} as const;
export type RunnableKind = keyof typeof runnableKinds;

/** Why a shell block of the docs does not run in CI; the info string is `sh <kind>`. */
export const nonRunnableKinds = {
  claude: 'starts Claude Code, which needs a person at the keyboard and an Anthropic account',
  docker: 'needs Docker, which CI does not have',
  contributor: 'for a checkout of this repository; CI runs these suites itself',
} as const;
export type NonRunnableKind = keyof typeof nonRunnableKinds;

export interface ShellBlock {
  file: string;
  line: number;
  /** The whole info string, e.g. `sh runnable`, `bash`, `sh docker`. */
  info: string;
}

const fenceOpen = /^(\s*)(`{3,}|~{3,})(.*)$/;
const shellLanguage = /^(sh|bash|shell|console|zsh)\b/;

/** Every fenced block of one Markdown text whose language is a shell, with its info string. */
export function shellBlocks(file: string, text: string): ShellBlock[] {
  const lines = text.split('\n');
  const blocks: ShellBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = fenceOpen.exec(lines[i]!);
    if (!open) continue;
    const [, , marker, rest] = open;
    const info = rest!.trim();
    let j = i + 1;
    while (j < lines.length && !lines[j]!.trimStart().startsWith(marker!)) j++;
    if (shellLanguage.test(info)) blocks.push({ file, line: i + 1, info });
    i = j;
  }
  return blocks;
}

/** The shell blocks that neither run nor say which non-runnable kind they are. */
export function unmarkedShellBlocks(blocks: ShellBlock[]): string[] {
  const allowed = new Set(
    [...Object.keys(runnableKinds), ...Object.keys(nonRunnableKinds)].map((kind) => `sh ${kind}`),
  );
  return blocks
    .filter((block) => !allowed.has(block.info.replace(/\s+/g, ' ')))
    .map((block) => `${block.file}:${block.line}: \`\`\`${block.info}`);
}

const saveAs = /^#\s*save as\s+(\S+\.ya?ml)\s*$/;

/** The blocks of one kind, shown and hidden, and the yaml files to save, of one Markdown text. */
export function runnableBlocks(file: string, text: string, kind: RunnableKind = 'runnable'): RunnableBlock[] {
  const fence = new RegExp(`^(\\s*)(\`{3,}|~{3,})\\s*sh\\s+${kind}\\s*$`);
  const hiddenOpen = new RegExp(`^(\\s*)<!--\\s*sh\\s+${kind}\\s*$`);
  const yamlFence = /^(\s*)(`{3,}|~{3,})\s*ya?ml\s*$/;
  const lines = text.split('\n');
  const blocks: RunnableBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = fence.exec(lines[i]!);
    const hidden = hiddenOpen.exec(lines[i]!);
    const yaml = yamlFence.exec(lines[i]!);
    if (!open && !hidden && !yaml) continue;
    const marker = (open ?? yaml)?.[2];
    const indent = (open ?? hidden ?? yaml)?.[1] ?? '';
    const ends = (line: string) => (marker ? line.trimStart().startsWith(marker) : line.trim() === '-->');
    const body: string[] = [];
    let j = i + 1;
    while (j < lines.length && !ends(lines[j]!)) {
      body.push(lines[j]!.startsWith(indent) ? lines[j]!.slice(indent.length) : lines[j]!);
      j++;
    }
    if (j === lines.length) throw new Error(`${file}:${i + 1}: a sh ${kind} block is never closed`);
    if (yaml) {
      const save = saveAs.exec(body[0] ?? '');
      if (save) {
        const eof = 'VAULT_DOCS_EOF';
        blocks.push({
          file,
          line: i + 1,
          code: `cat > '${save[1]}' <<'${eof}'\n${body.join('\n')}\n${eof}\n`,
          saves: save[1],
        });
      }
    } else {
      blocks.push({ file, line: i + 1, code: `${body.join('\n')}\n` });
    }
    i = j;
  }
  // Files to save belong to a page only when it has blocks of this kind.
  return blocks.some((block) => !block.saves) ? blocks : [];
}

function markdownFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    if (entry.name === 'node_modules' || entry.name.startsWith('.')) return [];
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return markdownFiles(path);
    return entry.name.endsWith('.md') ? [path] : [];
  });
}

/** docs/**\/*.md in path order, then README.md. */
export function docsFiles(repoRoot: string): string[] {
  return [...markdownFiles(join(repoRoot, 'docs')).sort(), join(repoRoot, 'README.md')];
}

/** Every block of one kind of docs/**\/*.md, then README.md's own. */
export function collectRunnableBlocks(repoRoot: string, kind: RunnableKind = 'runnable'): RunnableBlock[] {
  const seen = new Set<string>();
  const blocks: RunnableBlock[] = [];
  for (const path of docsFiles(repoRoot)) {
    const file = relative(repoRoot, path);
    for (const block of runnableBlocks(file, readFileSync(path, 'utf8'), kind)) {
      if (file === 'README.md' && seen.has(block.code)) continue;
      seen.add(block.code);
      blocks.push(block);
    }
  }
  return blocks;
}

/** Every shell block of docs/**\/*.md and README.md. */
export function collectShellBlocks(repoRoot: string): ShellBlock[] {
  return docsFiles(repoRoot).flatMap((path) =>
    shellBlocks(relative(repoRoot, path), readFileSync(path, 'utf8')),
  );
}
