/**
 * The values table in docs/platform/helm.md documents every key of charts/vault/values.yaml,
 * with the same defaults: a key added, renamed or re-defaulted without the README fails here.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { chartDir, repoRoot } from './support.js';

interface Row {
  key: string;
  defaultCell: string;
  description: string;
}

function tableRows(markdown: string): Row[] {
  const section = markdown.split(/^### Values$/m)[1]?.split(/^#{2,3} /m)[0];
  if (!section) throw new Error('docs/platform/helm.md has no "### Values" section');
  return section
    .split('\n')
    .filter((line) => line.startsWith('| `'))
    .map((line) => {
      const cells = line
        .slice(1, -1)
        .split(/(?<!\\)\|/)
        .map((cell) => cell.trim());
      return {
        key: cells[0]!.replace(/^`|`$/g, ''),
        defaultCell: cells[1] ?? '',
        description: cells[2] ?? '',
      };
    });
}

const isMap = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** Compares the table with the values; returns every disagreement, readably. */
function compare(values: Record<string, unknown>, rows: Row[]): string[] {
  const problems: string[] = [];
  const documented = new Map(rows.map((row) => [row.key, row]));
  const seen = new Set<string>();
  for (const row of rows) {
    if (seen.has(row.key)) problems.push(`${row.key} is listed twice`);
    seen.add(row.key);
  }
  const visited = new Set<string>();
  const walk = (node: Record<string, unknown>, prefix: string) => {
    for (const [name, value] of Object.entries(node)) {
      const key = prefix ? `${prefix}.${name}` : name;
      const row = documented.get(key);
      if (row) {
        visited.add(key);
        if (!row.description) problems.push(`${key} has no description`);
        const code = /^`(.*)`$/.exec(row.defaultCell);
        if (code) {
          let parsed: unknown;
          try {
            parsed = JSON.parse(code[1]!);
          } catch {
            problems.push(`${key}: default ${row.defaultCell} is not JSON`);
            continue;
          }
          if (JSON.stringify(parsed) !== JSON.stringify(value)) {
            problems.push(`${key}: the table says ${code[1]}, values.yaml says ${JSON.stringify(value)}`);
          }
        } else if (!(isMap(value) && Object.keys(value).length > 0)) {
          problems.push(`${key}: give the default as code, e.g. \`${JSON.stringify(value)}\``);
        }
      } else if (isMap(value) && Object.keys(value).length > 0) {
        walk(value, key);
      } else {
        problems.push(`${key} is in values.yaml but not in the table`);
      }
    }
  };
  walk(values, '');
  for (const key of documented.keys()) {
    if (!visited.has(key)) problems.push(`${key} is in the table but not in values.yaml`);
  }
  return problems;
}

describe('the values table in docs/platform/helm.md', () => {
  const values = parse(readFileSync(join(chartDir, 'values.yaml'), 'utf8')) as Record<string, unknown>;
  const rows = tableRows(readFileSync(join(repoRoot, 'docs', 'platform', 'helm.md'), 'utf8'));

  it('documents every key of values.yaml with its default, and nothing else', () => {
    expect(rows.length).toBeGreaterThan(50);
    expect(compare(values, rows)).toEqual([]);
  });

  it('notices a key missing from the table, a stale row and a wrong default', () => {
    const edited = structuredClone(values) as { server: Record<string, unknown> };
    edited.server.replicas = 5;
    edited.server.brandNew = true;
    const withStale = [...rows, { key: 'server.gone', defaultCell: '`1`', description: 'x' }];
    expect(compare(edited, withStale)).toEqual([
      'server.replicas: the table says 2, values.yaml says 5',
      'server.brandNew is in values.yaml but not in the table',
      'server.gone is in the table but not in values.yaml',
    ]);
  });
});
