/**
 * The chart installs the CRDs from crds/ (helm's crds/ directory: installed before the
 * templates, never upgraded or deleted by helm). The two copies must not drift.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { chartDir, repoRoot } from './support.js';

const sourceDir = join(repoRoot, 'crds');
const chartCrdDir = join(chartDir, 'crds');
const yamlFiles = (dir: string) =>
  readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort();

describe('charts/vault/crds', () => {
  it('holds the same files as crds/', () => {
    const source = yamlFiles(sourceDir);
    expect(source.length).toBeGreaterThan(0);
    expect(yamlFiles(chartCrdDir)).toEqual(source);
  });

  it('holds byte-identical copies (refresh with: cp crds/*.yaml charts/vault/crds/)', () => {
    for (const file of yamlFiles(sourceDir)) {
      const copy = readFileSync(join(chartCrdDir, file), 'utf8');
      expect(copy, `charts/vault/crds/${file} differs from crds/${file}`).toBe(
        readFileSync(join(sourceDir, file), 'utf8'),
      );
    }
  });

  it('defines both kinds of the vault.ghoststack.io group', () => {
    const names = yamlFiles(chartCrdDir).flatMap((file) =>
      parseAllDocuments(readFileSync(join(chartCrdDir, file), 'utf8')).map(
        (doc) => (doc.toJS() as { metadata: { name: string } }).metadata.name,
      ),
    );
    expect(names.sort()).toEqual(['vaultcredentials.vault.ghoststack.io', 'vaultleases.vault.ghoststack.io']);
  });
});
