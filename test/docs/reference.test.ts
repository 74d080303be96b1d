/**
 * The reference pages of the documentation site are generated from the sources of truth
 * (OpenAPI document, commander definitions, CRD schemas, the chart's values schema, the
 * metrics registries). They are committed, so they must match what the sources produce now.
 */
import { describe, expect, it } from 'vitest';
import { fullProgram } from '../../scripts/docs/pages/cli.js';
import { listTools } from '../../scripts/docs/pages/mcp-tools.js';
import { processes } from '../../scripts/docs/pages/metrics.js';
import { renderReference, staleReference } from '../../scripts/docs/reference.js';
import { openApiDocument } from '../../src/server/openapi.js';

const pages = await renderReference();
const page = (file: string) => pages.find((p) => p.file === file)!.content;

describe('the generated reference pages', () => {
  it('are current (run `npm run docs:reference` after changing a source)', async () => {
    expect(await staleReference()).toEqual([]);
  }, 60_000);

  it('document every operation of the OpenAPI document under its operationId', () => {
    const text = page('docs/reference/http-api.md');
    const ops = Object.values(openApiDocument('0').paths).flatMap((methods) =>
      Object.values(methods as Record<string, { operationId: string }>).map((op) => op.operationId),
    );
    expect(ops.length).toBeGreaterThan(30);
    for (const id of ops) expect(text).toContain(`{#${id}}`);
  });

  it('document every command of the CLI with its options', async () => {
    const text = page('docs/reference/cli.md');
    const program = await fullProgram();
    const walk = (command: typeof program, path: string[]): string[] =>
      command.commands
        .filter((c) => c.name() !== 'help')
        .flatMap((c) => [[...path, c.name()].join(' '), ...walk(c, [...path, c.name()])]);
    const names = walk(program, ['vault']);
    expect(names).toEqual(expect.arrayContaining(['vault dev', 'vault lease create', 'vault operator run']));
    for (const name of names) expect(text).toContain(`\`${name}\``);
    expect(text).toContain('`--show-value`');
  });

  it('document every MCP tool an agent is offered, with its arguments', async () => {
    const text = page('docs/reference/mcp-tools.md');
    const tools = await listTools();
    expect(tools.map((t) => t.name)).toEqual(
      expect.arrayContaining(['run_with_credentials', 'run_with_broker']),
    );
    for (const tool of tools) {
      expect(text).toContain(`## \`${tool.name}\``);
      for (const argument of Object.keys((tool.inputSchema.properties as object) ?? {})) {
        expect(text).toContain(`| \`${argument}\``);
      }
    }
    expect(text).toContain('| `credentials[].leaseId` | `string` | yes | with leaseId, env |');
  });

  it('document every metric of every process', () => {
    const text = page('docs/reference/metrics.md');
    for (const { registry } of processes()) {
      for (const metric of registry.getMetricsAsArray()) {
        const name = (metric as unknown as { name: string }).name;
        if (/(^|_)(process|nodejs)_/.test(name)) continue;
        expect(text).toContain(`\`${name}\``);
      }
    }
  });

  it('describe every CRD field and every Helm value (no empty description cell)', () => {
    for (const file of ['docs/reference/crds.md', 'docs/reference/helm-values.md']) {
      const rows = page(file)
        .split('\n')
        .filter((line) => line.startsWith('| `'));
      expect(rows.length, file).toBeGreaterThan(40);
      for (const row of rows) expect(row, file).not.toMatch(/\|\s*\|$/);
    }
  });
});
