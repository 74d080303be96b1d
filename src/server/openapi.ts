import { z } from 'zod';
import { errorBody } from '../contract/common.js';
import { type RouteSpec, routes } from '../contract/routes.js';

const toSchema = (schema: z.ZodType, io: 'input' | 'output') =>
  z.toJSONSchema(schema, { target: 'draft-2020-12', io, unrepresentable: 'any' });

/** The OpenAPI 3.1 document, generated from the same zod schemas the server validates with. */
export function openApiDocument(version: string) {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const [operationId, spec] of Object.entries(routes) as Array<[string, RouteSpec]>) {
    const path = spec.path.replace(/:([A-Za-z]+)/g, '{$1}');
    const parameters = [...spec.path.matchAll(/:([A-Za-z]+)/g)].map(([, name]) => ({
      name,
      in: 'path',
      required: true,
      schema: { type: 'string' },
    }));
    if (spec.query) {
      const query = toSchema(spec.query, 'input') as {
        properties?: Record<string, unknown>;
        required?: string[];
      };
      for (const [name, schema] of Object.entries(query.properties ?? {})) {
        parameters.push({
          name,
          in: 'query',
          required: query.required?.includes(name) ?? false,
          schema: schema as never,
        });
      }
    }
    const status = String(spec.status ?? 200);
    paths[path] ??= {};
    paths[path][spec.method] = {
      operationId,
      summary: spec.summary,
      ...(spec.auth === 'none' ? { security: [] } : {}),
      ...(parameters.length ? { parameters } : {}),
      ...(spec.body
        ? {
            requestBody: {
              required: true,
              content: { 'application/json': { schema: toSchema(spec.body, 'input') } },
            },
          }
        : {}),
      responses: {
        [status]: {
          description: 'Success',
          ...(spec.response
            ? { content: { 'application/json': { schema: toSchema(spec.response, 'output') } } }
            : spec.path.endsWith('/events')
              ? { content: { 'text/event-stream': { schema: { type: 'string' } } } }
              : {}),
        },
        default: {
          description: 'Error',
          content: { 'application/json': { schema: toSchema(errorBody, 'output') } },
        },
      },
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Vault API',
      version,
      description: 'Credentials handed out as audited, time-limited leases.',
    },
    servers: [{ url: '/' }],
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    security: [{ bearer: [] }],
    paths,
  };
}
