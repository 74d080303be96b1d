/**
 * Checks the built site (docs/.vitepress/dist) for what VitePress does not: every link to a
 * page of the site names an anchor that exists on it, and no page loads anything from
 * another host (scripts, styles, images, fonts).
 *
 *   npx tsx scripts/docs/check-links.ts [DIST]      (default $DOCS_OUT_DIR, else docs/.vitepress/dist)
 *
 * Exits 1 and prints one line per problem.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, posix, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

export const defaultDist =
  process.env.DOCS_OUT_DIR ?? fileURLToPath(new URL('../../docs/.vitepress/dist/', import.meta.url));

const decode = (value: string) =>
  value
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');

/** The page file a site path names: `/guide/cli` and `/guide/cli.html` → guide/cli.html, `/k8s/` → k8s/index.html. */
function pageFile(dist: string, path: string): string | undefined {
  const clean = path.replace(/\/+$/, '/');
  const candidates = clean.endsWith('/')
    ? [`${clean}index.html`]
    : clean.endsWith('.html')
      ? [clean]
      : [`${clean}.html`, `${clean}/index.html`, clean];
  return candidates.map((c) => join(dist, c)).find((file) => existsSync(file));
}

export function checkSite(dist = defaultDist): string[] {
  const problems: string[] = [];
  const pages = readdirSync(dist, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.html'));
  const ids = new Map<string, Set<string>>();
  const idsOf = (file: string) => {
    let found = ids.get(file);
    if (!found) {
      const html = readFileSync(file, 'utf8');
      found = new Set([...html.matchAll(/\sid="([^"]*)"/g)].map((m) => decode(m[1]!)));
      ids.set(file, found);
    }
    return found;
  };
  for (const page of pages) {
    const file = join(dist, page);
    const html = readFileSync(file, 'utf8');
    // Anything the browser fetches by itself must come from the site.
    for (const m of html.matchAll(/<(script|link|img|iframe|source)\b[^>]*?\s(src|href)="([^"]*)"/g)) {
      const url = decode(m[3]!);
      if (/^(https?:)?\/\//.test(url)) problems.push(`${page}: <${m[1]}> loads ${url} from another host`);
    }
    for (const m of html.matchAll(/<a\b[^>]*?\shref="([^"]*)"/g)) {
      const href = decode(m[1]!);
      if (/^([a-z]+:|\/\/)/i.test(href)) continue;
      const [pathPart, fragment] = href.split('#', 2) as [string, string | undefined];
      const target = pathPart
        ? pageFile(
            dist,
            pathPart.startsWith('/') ? pathPart : posix.join(posix.dirname(`/${page}`), pathPart),
          )
        : file;
      if (!target) {
        // Files of docs/public (e.g. /openapi.json) are served as they are.
        if (!existsSync(join(dist, pathPart))) problems.push(`${page}: link to ${href}: no such page`);
        continue;
      }
      if (fragment && !idsOf(target).has(decodeURIComponent(fragment))) {
        problems.push(`${page}: link to ${href}: ${relative(dist, target)} has no anchor #${fragment}`);
      }
    }
  }
  return [...new Set(problems)];
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const dist = process.argv[2] ?? defaultDist;
  const problems = checkSite(dist);
  for (const problem of problems) process.stderr.write(`${problem}\n`);
  if (problems.length) {
    process.stderr.write(`${problems.length} broken link(s) in ${dist}\n`);
    process.exitCode = 1;
  } else process.stderr.write('links and anchors: all good\n');
}
