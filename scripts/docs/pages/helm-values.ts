/**
 * The Helm values reference, from charts/vault/values.schema.json (types, limits and
 * descriptions) and charts/vault/values.yaml (defaults). A key is one row when its schema
 * lists no properties of its own (a plain value, a map, or an object taken as a whole).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { code, describeField, generatedNotice, table, text } from '../markdown.js';
import { type FieldRow, flatten, type JsonSchema } from '../schema-fields.js';

export const chartDir = new URL('../../../charts/vault/', import.meta.url).pathname;

export function loadChart(): { schema: JsonSchema; values: Record<string, unknown> } {
  return {
    schema: JSON.parse(readFileSync(join(chartDir, 'values.schema.json'), 'utf8')) as JsonSchema,
    values: parse(readFileSync(join(chartDir, 'values.yaml'), 'utf8')) as Record<string, unknown>,
  };
}

/**
 * One row per documented key: a key whose default in values.yaml is a map with keys of its
 * own is a group (its keys are rows), anything else is one row.
 */
export function valueRows(schema: JsonSchema, values: Record<string, unknown>): FieldRow[] {
  const resolve = (ref: string) =>
    ref
      .split('/')
      .slice(1)
      .reduce<JsonSchema | undefined>((node, key) => node?.[key] as JsonSchema, schema);
  const isGroup = (node: JsonSchema, path: string) => {
    const value = valueAt(values, path);
    return (
      typeof node.$ref !== 'string' &&
      node.properties !== undefined &&
      typeof value === 'object' &&
      value !== null &&
      !Array.isArray(value) &&
      Object.keys(value).length > 0
    );
  };
  const nodeAt = (path: string) =>
    path
      .split('.')
      .reduce<JsonSchema | undefined>(
        (node, key) => (node?.properties as Record<string, JsonSchema> | undefined)?.[key],
        schema,
      );
  return flatten(schema, '', { resolve, leaf: (node, path) => !isGroup(node, path) }).filter((row) => {
    const node = nodeAt(row.path);
    return !row.path.includes('[]') && !(node && isGroup(node, row.path));
  });
}

export function valueAt(values: unknown, path: string): unknown {
  return path
    .split('.')
    .reduce<unknown>((node, key) => (node as Record<string, unknown> | undefined)?.[key], values);
}

export function helmValuesPage(): string {
  const { schema, values } = loadChart();
  const rows = valueRows(schema, values);
  const groups = new Map<string, FieldRow[]>();
  for (const row of rows) {
    const top = row.path.includes('.') ? row.path.split('.')[0]! : 'general';
    groups.set(top, [...(groups.get(top) ?? []), row]);
  }
  const sections = [...groups].map(([group, list]) =>
    [
      `## ${group === 'general' ? 'General' : code(group)}`,
      '',
      table(
        ['key', 'type', 'default', 'description'],
        list.map((row) => [
          code(row.path),
          code(row.type),
          code(JSON.stringify(valueAt(values, row.path)) ?? 'unset'),
          text(
            describeField(
              row.description,
              row.constraints.filter((c) => !c.startsWith('default')),
            ),
          ),
        ]),
      ),
    ].join('\n'),
  );
  return [
    generatedNotice('charts/vault/values.schema.json and charts/vault/values.yaml'),
    '',
    '# Helm values reference',
    '',
    'Every value of the `charts/vault` chart, with its default from `values.yaml`. Helm checks values against `values.schema.json` before rendering anything, so a misspelt key or a wrong type is refused with the key named. How to install: [Helm for platform teams](/platform/helm).',
    '',
    ...sections.flatMap((section) => [section, '']),
  ].join('\n');
}
