/**
 * The fenced code blocks of the docs that CI runs as written: those whose info string is
 * `sh runnable`. Files in path order (docs/ before README.md), blocks in file order; a block
 * of README.md that a docs file already has runs once.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

export interface RunnableBlock {
  /** Repository-relative path of the Markdown file. */
  file: string;
  /** 1-based line of the opening fence. */
  line: number;
  code: string;
}

const fence = /^(\s*)(`{3,}|~{3,})\s*sh\s+runnable\s*$/;

/** The runnable blocks of one Markdown text. */
export function runnableBlocks(file: string, text: string): RunnableBlock[] {
  const lines = text.split('\n');
  const blocks: RunnableBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = fence.exec(lines[i]!);
    if (!open) continue;
    const [, indent, marker] = open;
    const body: string[] = [];
    let j = i + 1;
    while (j < lines.length && !lines[j]!.trimStart().startsWith(marker!)) {
      body.push(lines[j]!.startsWith(indent!) ? lines[j]!.slice(indent!.length) : lines[j]!);
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

/** Every runnable block of docs/**\/*.md, then README.md's own. */
export function collectRunnableBlocks(repoRoot: string): RunnableBlock[] {
  const files = [...markdownFiles(join(repoRoot, 'docs')).sort(), join(repoRoot, 'README.md')];
  const seen = new Set<string>();
  const blocks: RunnableBlock[] = [];
  for (const path of files) {
    const file = relative(repoRoot, path);
    for (const block of runnableBlocks(file, readFileSync(path, 'utf8'))) {
      if (file === 'README.md' && seen.has(block.code)) continue;
      seen.add(block.code);
      blocks.push(block);
    }
  }
  return blocks;
}
