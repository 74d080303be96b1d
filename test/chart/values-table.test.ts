/**
 * values.schema.json describes every key of charts/vault/values.yaml, and nothing else: the
 * Helm values reference page (docs/reference/helm-values.md) is generated from the two, so a
 * key added or renamed without a description fails here.
 */
import { describe, expect, it } from 'vitest';
import { loadChart, valueRows } from '../../scripts/docs/pages/helm-values.js';
import type { FieldRow } from '../../scripts/docs/schema-fields.js';

const isMap = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** Compares the schema's documented keys with the values; returns every disagreement, readably. */
function compare(values: Record<string, unknown>, rows: FieldRow[]): string[] {
  const problems: string[] = [];
  const documented = new Map(rows.map((row) => [row.path, row]));
  const visited = new Set<string>();
  const walk = (node: Record<string, unknown>, prefix: string) => {
    for (const [name, value] of Object.entries(node)) {
      const key = prefix ? `${prefix}.${name}` : name;
      const row = documented.get(key);
      if (row) {
        visited.add(key);
        if (!row.description) problems.push(`${key} has no description in values.schema.json`);
      } else if (isMap(value) && Object.keys(value).length > 0) {
        walk(value, key);
      } else {
        problems.push(`${key} is in values.yaml but not in values.schema.json`);
      }
    }
  };
  walk(values, '');
  for (const key of documented.keys()) {
    if (!visited.has(key)) problems.push(`${key} is in values.schema.json but not in values.yaml`);
  }
  return problems;
}

describe('values.schema.json', () => {
  const { schema, values } = loadChart();
  const rows = valueRows(schema, values);

  it('describes every key of values.yaml, and nothing else', () => {
    expect(rows.length).toBeGreaterThan(50);
    expect(compare(values, rows)).toEqual([]);
  });

  it('notices a key missing from the schema, a stale key and a missing description', () => {
    const edited = structuredClone(values) as { server: Record<string, unknown> };
    edited.server.brandNew = true;
    const withStale = [
      ...rows.map((row) => (row.path === 'server.replicas' ? { ...row, description: '' } : row)),
      { path: 'server.gone', type: 'integer', required: false, description: 'x', constraints: [] },
    ];
    expect(compare(edited, withStale)).toEqual([
      'server.replicas has no description in values.schema.json',
      'server.brandNew is in values.yaml but not in values.schema.json',
      'server.gone is in values.schema.json but not in values.yaml',
    ]);
  });
});
