/**
 * The shell blocks of the docs and which of them CI runs as written. A fenced block whose info
 * string is `sh runnable` runs; so does a hidden one, an HTML comment that opens with the line
 * `<!-- sh runnable` and closes with a line `-->` (setup a reader already has, such as a
 * database's admin URL in a file; the site does not show it). Every other `sh`/`bash` block must
 * say why it cannot run, with one of `nonRunnableKinds` (`sh cluster`, ...). Files in path order
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
}

/** Why a shell block of the docs does not run in CI; the info string is `sh <kind>`. */
export const nonRunnableKinds = {
  cluster: 'needs a Kubernetes cluster (kubectl, helm); test/chart and test/cluster cover these',
  docker: 'needs Docker, which CI does not have',
  interactive: 'waits for a person or serves in the foreground until stopped',
  placeholder: 'stands for values of your own deployment (hosts, ids, files) to fill in',
  contributor: 'for a checkout of this repository; CI runs these suites itself',
} as const;
export type NonRunnableKind = keyof typeof nonRunnableKinds;

export interface ShellBlock {
  file: string;
  line: number;
  /** The whole info string, e.g. `sh runnable`, `bash`, `sh cluster`. */
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
  const allowed = new Set(['sh runnable', ...Object.keys(nonRunnableKinds).map((kind) => `sh ${kind}`)]);
  return blocks
    .filter((block) => !allowed.has(block.info.replace(/\s+/g, ' ')))
    .map((block) => `${block.file}:${block.line}: \`\`\`${block.info}`);
}

const fence = /^(\s*)(`{3,}|~{3,})\s*sh\s+runnable\s*$/;
const hiddenOpen = /^<!--\s*sh\s+runnable\s*$/;

/** The runnable blocks, shown and hidden, of one Markdown text. */
export function runnableBlocks(file: string, text: string): RunnableBlock[] {
  const lines = text.split('\n');
  const blocks: RunnableBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = fence.exec(lines[i]!);
    const hidden = hiddenOpen.test(lines[i]!);
    if (!open && !hidden) continue;
    const indent = open?.[1] ?? '';
    const ends = (line: string) => (open ? line.trimStart().startsWith(open[2]!) : line.trim() === '-->');
    const body: string[] = [];
    let j = i + 1;
    while (j < lines.length && !ends(lines[j]!)) {
      body.push(lines[j]!.startsWith(indent) ? lines[j]!.slice(indent.length) : lines[j]!);
      j++;
    }
    if (j === lines.length) throw new Error(`${file}:${i + 1}: a sh runnable block is never closed`);
    blocks.push({ file, line: i + 1, code: `${body.join('\n')}\n` });
    i = j;
  }
  return blocks;
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

/** Every runnable block of docs/**\/*.md, then README.md's own. */
export function collectRunnableBlocks(repoRoot: string): RunnableBlock[] {
  const seen = new Set<string>();
  const blocks: RunnableBlock[] = [];
  for (const path of docsFiles(repoRoot)) {
    const file = relative(repoRoot, path);
    for (const block of runnableBlocks(file, readFileSync(path, 'utf8'))) {
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
