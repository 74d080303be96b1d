import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

/**
 * No code path reads a whole prefix of the store in one request: etcd refuses responses over
 * 4 MiB, and a tenant's leases, audit records, credentials and tokens grow without bound. Every
 * `.range(prefix, options)` in src/ must pass an options object literal with a `limit` (or go
 * through `scanPrefix`/`readSmallPrefix` in src/store/paged.ts, which do). The store
 * implementations themselves (src/store/etcd-*.ts, embedded-store.ts) are the exception: they
 * are what the limit is passed to.
 */

const root = join(import.meta.dirname, '../..');
const exempt = new Set(['src/store/etcd-store.ts', 'src/store/etcd-watch.ts', 'src/store/embedded-store.ts']);

/** `file:line: text` of every range call without a literal `limit`. */
function unpagedRanges(fileName: string, source: string): string[] {
  const file = ts.createSourceFile(fileName, source, ts.ScriptTarget.Latest, true);
  const found: string[] = [];
  const visit = (node: ts.Node) => {
    if (
      ts.isCallExpression(node) &&
      ts.isPropertyAccessExpression(node.expression) &&
      node.expression.name.text === 'range'
    ) {
      const options = node.arguments[1];
      const limited =
        options !== undefined &&
        ts.isObjectLiteralExpression(options) &&
        options.properties.some(
          (p) =>
            (ts.isPropertyAssignment(p) || ts.isShorthandPropertyAssignment(p)) &&
            ts.isIdentifier(p.name) &&
            p.name.text === 'limit',
        );
      if (!limited) {
        const { line } = file.getLineAndCharacterOfPosition(node.getStart());
        found.push(`${fileName}:${line + 1}: ${node.getText().split('\n')[0]}`);
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(file);
  return found;
}

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts') ? [path] : [];
  });
}

describe('reads of store prefixes', () => {
  it('are paged everywhere in src/', () => {
    const files = sources(join(root, 'src'))
      .map((path) => relative(root, path))
      .filter((path) => !exempt.has(path));
    expect(files.length).toBeGreaterThan(100);
    const offenders = files.flatMap((path) => unpagedRanges(path, readFileSync(join(root, path), 'utf8')));
    expect(offenders, 'read these in pages (scanPrefix in src/store/paged.ts)').toEqual([]);
  });

  it('catches a whole-prefix read when one comes back', () => {
    const code = `
      const all = await store.range(keys.leases(tenant));
      const spread = await deps.store.range(keys.auditRecords(tenant), { ...options });
      const paged = await store.range(keys.leases(tenant), { limit: 100 });
      const short = await store.range(prefix, { limit, startAfter });
    `;
    expect(unpagedRanges('x.ts', code)).toEqual([
      'x.ts:2: store.range(keys.leases(tenant))',
      'x.ts:3: deps.store.range(keys.auditRecords(tenant), { ...options })',
    ]);
  });
});
