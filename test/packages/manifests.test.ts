/**
 * The npm packages' manifests against the repository's: the CLI package depends on what the
 * repository does, at the same versions, except the Kubernetes client, which it leaves to an
 * optional peer (`src/k8s/client-module.ts` names the version its message tells users to install).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { kubernetesClientPackage } from '../../src/k8s/client-module.js';
import { repoRoot } from '../support/vault-dev.js';

const manifest = (path: string) => JSON.parse(readFileSync(join(repoRoot, path), 'utf8'));

describe('package manifests', () => {
  const root = manifest('package.json');
  const cli = manifest('packages/cli/package.json');

  it('the CLI depends on the repository dependencies at their versions, but the Kubernetes client', () => {
    const { '@kubernetes/client-node': kubernetes, ...rest } = root.dependencies;
    expect(kubernetes).toBeDefined();
    expect(cli.dependencies).toEqual(rest);
  });

  it('the Kubernetes client is an optional peer of the CLI, at the version its message names', () => {
    const version = root.dependencies['@kubernetes/client-node'];
    expect(cli.peerDependencies).toEqual({ '@kubernetes/client-node': version });
    expect(cli.peerDependenciesMeta).toEqual({ '@kubernetes/client-node': { optional: true } });
    expect(kubernetesClientPackage).toBe(`@kubernetes/client-node@${version}`);
  });
});
