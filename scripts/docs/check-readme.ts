/**
 * The README is short and points into the documentation site: every relative link of
 * README.md and CONTRIBUTING.md must name a file that exists, and an anchor that the page's
 * heading gives (rendered by VitePress's own Markdown pipeline, so the ids are the site's).
 *
 *   npm run readme
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createMarkdownRenderer } from 'vitepress';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const docsDir = join(repoRoot, 'docs');

/** The links of a Markdown text, outside code blocks. */
export function linksOf(markdown: string): string[] {
  const prose = markdown.replace(/^```[\s\S]*?^```/gm, '');
  return [...prose.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]!);
}

export async function checkLinks(files = ['README.md', 'CONTRIBUTING.md']): Promise<string[]> {
  const md = await createMarkdownRenderer(docsDir);
  const anchors = new Map<string, Set<string>>();
  const anchorsOf = (path: string) => {
    let ids = anchors.get(path);
    if (!ids) {
      const html = md.render(readFileSync(path, 'utf8'), {
        relativePath: relative(docsDir, path),
        cleanUrls: true,
      });
      ids = new Set([...html.matchAll(/\sid="([^"]*)"/g)].map((m) => m[1]!));
      anchors.set(path, ids);
    }
    return ids;
  };
  const problems: string[] = [];
  for (const file of files) {
    const source = join(repoRoot, file);
    for (const link of linksOf(readFileSync(source, 'utf8'))) {
      if (/^[a-z]+:/i.test(link)) continue;
      const [target, anchor] = link.split('#', 2) as [string, string | undefined];
      const path = target ? join(dirname(source), target) : source;
      if (!existsSync(path)) {
        problems.push(`${file}: link to ${link}: ${relative(repoRoot, path)} does not exist`);
      } else if (anchor && path.endsWith('.md') && !anchorsOf(path).has(anchor)) {
        problems.push(`${file}: link to ${link}: no heading with the anchor #${anchor}`);
      }
    }
  }
  return problems;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const problems = await checkLinks();
  for (const problem of problems) process.stderr.write(`${problem}\n`);
  const size = readFileSync(join(repoRoot, 'README.md')).length;
  process.stderr.write(`README.md: ${size} bytes, ${problems.length} broken link(s)\n`);
  process.exitCode = problems.length ? 1 : 0;
}
