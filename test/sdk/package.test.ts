/**
 * The contract of DESIGN §1: pack @ghoststack/vault-sdk, install the tarball alone in a fresh
 * project, and run the seed's example verbatim against a real `vault dev`.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot, startVaultDev, type VaultDev } from '../support/vault-dev.js';

/** DESIGN §1, character for character. */
const seedExample = `import { Vault } from '@ghoststack/vault-sdk';
const vault = await Vault.connect({ tenant: 'my-org', token: process.env.VAULT_TOKEN });
await vault.credentials.create({ name: 'stripe-api-key', type: 'api-key', value: 'sk_live_...',
  metadata: { service: 'stripe', environment: 'production' } });
const lease = await vault.leases.create({ credentialName: 'stripe-api-key', ttl: '15m',
  identity: { type: 'agent', name: 'claude-code' } });
lease.value; lease.expiresAt; // a Date, 15 minutes from now
`;

const report = `
console.log(JSON.stringify({
  value: lease.value,
  expiresAt: lease.expiresAt.toISOString(),
  isDate: lease.expiresAt instanceof Date,
  identity: lease.identity,
  tenant: lease.tenant,
}));
`;

const npm = (args: string[], cwd: string) =>
  execFileSync('npm', args, {
    cwd,
    encoding: 'utf8',
    env: {
      ...process.env,
      npm_config_audit: 'false',
      npm_config_fund: 'false',
      npm_config_update_notifier: 'false',
    },
  });

describe('@ghoststack/vault-sdk as a package', () => {
  let dev: VaultDev;
  let work: string;
  let tarball: string;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'vault-sdk-consumer-'));
    [dev] = await Promise.all([
      startVaultDev(),
      (async () => {
        const packed = JSON.parse(
          npm(['pack', '--json', '--pack-destination', work], join(repoRoot, 'packages/sdk')),
        ) as { filename: string; files: { path: string }[] }[];
        tarball = join(work, packed[0]!.filename);
      })(),
    ]);
  }, 180_000);

  afterAll(async () => {
    await dev?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('the seed example in DESIGN.md is the one tested here', () => {
    const design = '/work/shared/DESIGN.md';
    if (!existsSync(design)) return;
    expect(readFileSync(design, 'utf8')).toContain(seedExample.trimEnd());
  });

  it('packs with no dependencies, JS and type declarations only', () => {
    const listing = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).split('\n').filter(Boolean);
    expect(listing).toContain('package/dist/index.js');
    expect(listing).toContain('package/dist/index.d.ts');
    expect(listing.filter((f) => /\.test\.|\.ts$/.test(f) && !f.endsWith('.d.ts'))).toEqual([]);
    const manifest = JSON.parse(
      execFileSync('tar', ['-xzOf', tarball, 'package/package.json'], { encoding: 'utf8' }),
    );
    expect(manifest.name).toBe('@ghoststack/vault-sdk');
    expect(manifest.dependencies ?? {}).toEqual({});
    const code = execFileSync('tar', ['-xzOf', tarball, '--wildcards', 'package/dist/*.js'], {
      encoding: 'utf8',
    });
    expect(code).not.toMatch(/from ['"](zod|node:)/);
  });

  it('installs alone and runs the seed example verbatim against vault dev', async () => {
    const project = join(work, 'consumer');
    execFileSync('mkdir', ['-p', project]);
    writeFileSync(
      join(project, 'package.json'),
      JSON.stringify({ name: 'consumer', private: true, type: 'module' }),
    );
    npm(['install', '--offline', '--no-package-lock', tarball], project);
    expect(readdirSync(join(project, 'node_modules')).filter((f) => !f.startsWith('.'))).toEqual([
      '@ghoststack',
    ]);

    writeFileSync(join(project, 'example.mjs'), seedExample + report);
    const before = Date.now();
    const output = execFileSync(process.execPath, ['example.mjs'], {
      cwd: project,
      encoding: 'utf8',
      env: { PATH: process.env.PATH ?? '', VAULT_ADDR: dev.addr, VAULT_TOKEN: dev.token },
    });
    const result = JSON.parse(output.trim().split('\n').at(-1)!);
    expect(result.value).toBe('sk_live_...');
    expect(result.isDate).toBe(true);
    expect(result.tenant).toBe('my-org');
    expect(result.identity).toEqual({ type: 'agent', name: 'claude-code' });
    const expiresAt = Date.parse(result.expiresAt);
    expect(expiresAt).toBeGreaterThanOrEqual(before + 15 * 60_000 - 5_000);
    expect(expiresAt).toBeLessThanOrEqual(Date.now() + 15 * 60_000 + 5_000);

    // Run again: the create repeats an existing credential exactly, so it is not a conflict.
    const again = execFileSync(process.execPath, ['example.mjs'], {
      cwd: project,
      encoding: 'utf8',
      env: { PATH: process.env.PATH ?? '', VAULT_ADDR: dev.addr, VAULT_TOKEN: dev.token },
    });
    expect(JSON.parse(again.trim().split('\n').at(-1)!).value).toBe('sk_live_...');
  });

  it('type-checks the example in TypeScript against the published declarations', () => {
    const project = join(work, 'consumer');
    writeFileSync(
      join(project, 'example.ts'),
      `${seedExample}const when: Date = lease.expiresAt;\nexport { when };\n`,
    );
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          noEmit: true,
          skipLibCheck: true,
          lib: ['ES2023', 'DOM'],
          types: ['node'],
          typeRoots: [join(repoRoot, 'node_modules/@types')],
        },
        files: ['example.ts'],
      }),
    );
    execFileSync(process.execPath, [join(repoRoot, 'node_modules/typescript/bin/tsc'), '-p', project], {
      encoding: 'utf8',
    });
  });
});
