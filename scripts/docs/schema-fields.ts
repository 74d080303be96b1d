/**
 * Flattens a JSON Schema (zod's output, a CRD's openAPIV3Schema, a chart's values schema)
 * into one row per field, with a dotted path, a readable type, whether it is required, its
 * description and its constraints. Unions become one group of rows per variant.
 */
export type JsonSchema = { [key: string]: unknown };

export interface FieldRow {
  path: string;
  type: string;
  required: boolean;
  description: string;
  constraints: string[];
  /** For a field of one variant of a union: which one, e.g. `engine: "postgres"`. */
  variant?: string;
}

const unbounded = new Set([Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER]);

const asSchema = (value: unknown): JsonSchema | undefined =>
  typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as JsonSchema) : undefined;

/** The type of a node as a person reads it: `string`, `integer[]`, `map of string`, `"a" | "b"`. */
export function typeOf(node: JsonSchema): string {
  if (node.const !== undefined) return JSON.stringify(node.const);
  if (Array.isArray(node.enum)) return node.enum.map((v) => JSON.stringify(v)).join(' | ');
  const variants = (node.oneOf ?? node.anyOf) as JsonSchema[] | undefined;
  if (variants) return 'one of the variants below';
  const type = Array.isArray(node.type) ? node.type.join(' | ') : (node.type as string | undefined);
  if (type === 'array') {
    const items = asSchema(node.items);
    return items ? `${wrap(typeOf(items))}[]` : 'array';
  }
  if (type === 'object' && !node.properties) {
    const values = asSchema(node.additionalProperties);
    if (values) return `map of ${typeOf(values) || 'any'}`;
    if (node['x-kubernetes-preserve-unknown-fields']) return 'object (any fields)';
  }
  if (node.nullable === true) return `${type ?? 'any'} | null`;
  return type ?? (node.$ref ? 'object' : 'any');
}

const wrap = (type: string) => (type.includes(' ') ? `(${type})` : type);

/** Limits and defaults worth reading next to a field's description. */
export function constraintsOf(node: JsonSchema): string[] {
  const out: string[] = [];
  const num = (key: string, label: string) => {
    const value = node[key];
    if (typeof value === 'number' && !unbounded.has(value)) out.push(`${label} ${value}`);
  };
  num('minLength', 'min length');
  num('maxLength', 'max length');
  num('minimum', 'minimum');
  num('exclusiveMinimum', 'greater than');
  num('maximum', 'maximum');
  num('minItems', 'min items');
  num('maxItems', 'max items');
  num('maxProperties', 'max entries');
  if (typeof node.pattern === 'string') out.push(`pattern \`${node.pattern}\``);
  if (node.default !== undefined) out.push(`default \`${JSON.stringify(node.default)}\``);
  if (node.format) out.push(`format ${node.format}`);
  return out;
}

/** A label for a union variant: its constant discriminator if it has one, else its fields. */
function variantLabel(variant: JsonSchema, index: number): string {
  const properties = asSchema(variant.properties) ?? {};
  for (const [name, child] of Object.entries(properties)) {
    const constant = asSchema(child)?.const;
    if (constant !== undefined) return `${name}: ${JSON.stringify(constant)}`;
  }
  const names = Object.keys(properties);
  return names.length ? `with ${names.join(', ')}` : `variant ${index + 1}`;
}

export interface FlattenOptions {
  /** Resolves a `$ref` (e.g. `#/definitions/resources`) to its schema. */
  resolve?: (ref: string) => JsonSchema | undefined;
  /** Stop at this node (one row) instead of listing its properties. */
  leaf?: (node: JsonSchema, path: string) => boolean;
}

/** Every field under `node`, depth first, in the schema's own order. */
export function flatten(node: JsonSchema, prefix = '', options: FlattenOptions = {}): FieldRow[] {
  const rows: FieldRow[] = [];
  const visit = (schema: JsonSchema, path: string, required: boolean, variant?: string) => {
    const resolved = typeof schema.$ref === 'string' ? (options.resolve?.(schema.$ref) ?? schema) : schema;
    const merged = { ...resolved, ...schema };
    if (path) {
      rows.push({
        path,
        type: typeOf(merged),
        required,
        description: typeof merged.description === 'string' ? merged.description : '',
        constraints: constraintsOf(merged),
        ...(variant && { variant }),
      });
    }
    if (path && options.leaf?.(schema, path)) return;
    children(merged, path, variant);
  };
  const children = (schema: JsonSchema, path: string, variant?: string) => {
    const properties = asSchema(schema.properties);
    if (properties) {
      const needed = new Set((schema.required as string[] | undefined) ?? []);
      for (const [name, child] of Object.entries(properties)) {
        visit(child as JsonSchema, path ? `${path}.${name}` : name, needed.has(name), variant);
      }
    }
    const items = asSchema(schema.items);
    if (items && (items.properties || items.oneOf || items.anyOf)) children(items, `${path}[]`, variant);
    const variants = (schema.oneOf ?? schema.anyOf) as JsonSchema[] | undefined;
    variants?.forEach((one, index) => {
      const label = variantLabel(one, index);
      children(one, path, variant ? `${variant}; ${label}` : label);
    });
  };
  if (prefix) visit(node, prefix, true);
  else children(node, '');
  return rows;
}
