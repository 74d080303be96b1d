/**
 * The HTTP API reference, from the OpenAPI document the server serves at /v1/openapi.json
 * (itself generated from the zod schemas in src/contract/routes.ts).
 */
import { openApiDocument } from '../../../src/server/openapi.js';
import { code, describeField, fieldTable, generatedNotice, table, text } from '../markdown.js';
import { flatten, type JsonSchema } from '../schema-fields.js';

interface Operation {
  operationId: string;
  summary: string;
  security?: unknown[];
  parameters?: Array<{ name: string; in: string; required: boolean; schema: JsonSchema }>;
  requestBody?: { content: Record<string, { schema: JsonSchema }> };
  responses: Record<string, { description: string; content?: Record<string, { schema: JsonSchema }> }>;
}

const groups: Record<string, string> = {
  auth: 'Authentication and tokens',
  sys: 'System: tenants and keys',
  identities: 'Identities',
  policies: 'Policies',
  credentials: 'Credentials',
  leases: 'Leases',
  audit: 'Audit',
};

const groupOf = (path: string) => path.split('/')[2] ?? '';

function operationSection(method: string, path: string, op: Operation): string {
  const parts = [`### ${text(op.summary)} {#${op.operationId}}`, '', code(`${method.toUpperCase()} ${path}`)];
  parts.push(
    '',
    op.security?.length === 0 ? 'No token needed.' : 'Needs a token: `Authorization: Bearer <token>`.',
  );
  if (op.parameters?.length) {
    parts.push(
      '',
      table(
        ['parameter', 'in', 'type', 'required', 'description'],
        op.parameters.map((p) => {
          const [row] = flatten({ properties: { [p.name]: p.schema } });
          return [
            code(p.name),
            p.in,
            code(row?.type ?? 'string'),
            p.required ? 'yes' : '',
            text(describeField(row?.description ?? '', row?.constraints)),
          ];
        }),
      ),
    );
  }
  const body = op.requestBody?.content['application/json']?.schema;
  if (body) {
    const rows = flatten(body);
    parts.push('', '**Request body** (JSON; unknown fields are refused):', '');
    parts.push(rows.length ? fieldTable(rows) : 'An empty object `{}`.');
  }
  for (const [status, response] of Object.entries(op.responses)) {
    if (status === 'default') continue;
    const [type, media] = Object.entries(response.content ?? {})[0] ?? [];
    if (!type) {
      parts.push('', `**Response** ${status}, no body.`);
    } else if (type !== 'application/json') {
      parts.push('', `**Response** ${status}: ${code(type)}.`);
    } else {
      const rows = flatten(media!.schema);
      parts.push('', `**Response** ${status}:`, '', rows.length ? fieldTable(rows) : 'An empty object.');
    }
  }
  return parts.join('\n');
}

export function httpApiPage(version: string): string {
  const document = openApiDocument(version);
  const sections = new Map<string, string[]>();
  for (const [path, methods] of Object.entries(document.paths)) {
    for (const [method, op] of Object.entries(methods as Record<string, Operation>)) {
      const group = groupOf(path);
      const list = sections.get(group) ?? [];
      list.push(operationSection(method, path, op));
      sections.set(group, list);
    }
  }
  const ordered = [...Object.keys(groups), ...[...sections.keys()].filter((g) => !(g in groups))];
  const body = ordered
    .filter((group) => sections.has(group))
    .map((group) => `## ${groups[group] ?? group}\n\n${sections.get(group)!.join('\n\n')}`);
  return [
    generatedNotice('the OpenAPI document (src/server/openapi.ts, from src/contract/routes.ts)'),
    '',
    '# HTTP API reference',
    '',
    `Every route of the v1 API, with the fields the server accepts and returns. The server serves the same description as an OpenAPI ${document.openapi} document at \`GET /v1/openapi.json\`; a copy is [here](/openapi.json){target="_self"}. Errors are always \`{"error": {"code", "message", "requestId"}}\`; the status codes, the idempotent lease retry and worked examples are in the [HTTP API guide](/guide/http-api). An optional \`X-Vault-Tenant\` header must name the token's tenant (system tokens use it to choose one).`,
    '',
    'Served outside this contract: `GET /healthz`, `GET /readyz`, `GET /metrics` (see the [metrics reference](/reference/metrics)), `GET /v1/openapi.json`, `GET /.well-known/vault/audit-keys/TENANT` and the web console at `/ui`.',
    '',
    ...body.flatMap((section) => [section, '']),
  ].join('\n');
}

export function openApiJson(version: string): string {
  return `${JSON.stringify(openApiDocument(version), null, 2)}\n`;
}
