/**
 * A real npm registry on 127.0.0.1 for the package tests: Verdaccio (installed by
 * test/assets/verdaccio.sh into the asset cache, not a project dependency), storage in a
 * temporary directory, everything else proxied to the registry npm is configured with. The
 * packages of packages/ are packed (their prepack builds them) and published to it under a
 * version unique to the run, so npx and npm install what this checkout built, never a copy
 * cached by an earlier run.
 *
 * better-sqlite3 (a dependency of the CLI) installs a prebuilt binary from its releases, or
 * compiles itself for minutes when it cannot download one, as here. The registry serves it
 * the binary `npm ci` built for this Node as such a release (prebuild-install's documented
 * `npm_config_better_sqlite3_binary_host` mirror), so installs take what a user's would.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { repoRoot } from './vault-dev.js';

export interface LocalRegistry {
  url: string;
  /** An npmrc with a publish token for the registry. */
  npmrc: string;
  /** Environment for npm/npx against the registry (merge into a process env). */
  env: Record<string, string>;
  stop(): Promise<void>;
}

export type PackageDir = 'sdk' | 'mcp' | 'cli';

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

const nodePrefix = dirname(dirname(process.execPath));

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });

export async function startRegistry(): Promise<LocalRegistry> {
  const bin = execFileSync('bash', [join(repoRoot, 'test/assets/verdaccio.sh')], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  }).trim();
  const dir = mkdtempSync(join(tmpdir(), 'vault-registry-'));
  const upstream = execFileSync('npm', ['config', 'get', 'registry'], { encoding: 'utf8' }).trim();
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  writeFileSync(
    join(dir, 'config.yaml'),
    [
      `storage: ${join(dir, 'storage')}`,
      'auth:',
      '  htpasswd:',
      `    file: ${join(dir, 'htpasswd')}`,
      'uplinks:',
      '  upstream:',
      `    url: ${upstream}`,
      '    timeout: 60s',
      'packages:',
      "  '@ghoststack/*':",
      '    access: $all',
      '    publish: $authenticated',
      "  '**':",
      '    access: $all',
      '    publish: $authenticated',
      '    proxy: upstream',
      'log: { type: stdout, format: json, level: warn }',
      '',
    ].join('\n'),
  );
  const child = spawn(
    process.execPath,
    [bin, '--config', join(dir, 'config.yaml'), '--listen', `127.0.0.1:${port}`],
    {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  live.add(child);
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    output = (output + chunk).slice(-20_000);
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    output = (output + chunk).slice(-20_000);
  });
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`verdaccio exited (${child.exitCode}):\n${output}`);
    const up = await fetch(`${url}/-/ping`).then(
      (r) => r.ok,
      () => false,
    );
    if (up) break;
    if (Date.now() > deadline) throw new Error(`verdaccio did not start:\n${output}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  // A user to publish as (the registry's own sign-up endpoint, as `npm adduser` uses it).
  const signup = await fetch(`${url}/-/user/org.couchdb.user:vault-test`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'vault-test', password: 'vault-test-password', type: 'user', roles: [] }),
  });
  if (!signup.ok) throw new Error(`verdaccio refused the test user: ${signup.status} ${await signup.text()}`);
  const { token } = (await signup.json()) as { token: string };
  const npmrc = join(dir, 'npmrc');
  writeFileSync(npmrc, `registry=${url}/\n//127.0.0.1:${port}/:_authToken=${token}\n`, { mode: 0o600 });
  const mirror = await startPrebuiltMirror(dir);
  return {
    url,
    npmrc,
    env: {
      npm_config_better_sqlite3_binary_host: mirror.url,
      npm_config_registry: `${url}/`,
      npm_config_userconfig: npmrc,
      npm_config_audit: 'false',
      npm_config_fund: 'false',
      npm_config_update_notifier: 'false',
      npm_config_loglevel: 'error',
      // Native modules (better-sqlite3) build against the headers installed with this Node
      // instead of downloading them (there is no network here but the registry).
      ...(existsSync(join(nodePrefix, 'include/node/node.h')) && { npm_config_nodedir: nodePrefix }),
    },
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      }
      live.delete(child);
      mirror.server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** better-sqlite3's prebuilt binary for this Node, laid out as its release downloads are. */
async function startPrebuiltMirror(dir: string): Promise<{ url: string; server: Server }> {
  const moduleDir = join(repoRoot, 'node_modules/better-sqlite3');
  const { version } = JSON.parse(readFileSync(join(moduleDir, 'package.json'), 'utf8')) as {
    version: string;
  };
  const name = `better-sqlite3-v${version}-node-v${process.versions.modules}-${process.platform}-${process.arch}.tar.gz`;
  const root = join(dir, 'prebuilt');
  mkdirSync(join(root, `v${version}`), { recursive: true });
  execFileSync('tar', [
    '-czf',
    join(root, `v${version}`, name),
    '-C',
    moduleDir,
    'build/Release/better_sqlite3.node',
  ]);
  const server = createHttpServer((req, res) => {
    const path = join(root, decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname));
    if (!path.startsWith(root) || !existsSync(path)) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/gzip' }).end(readFileSync(path));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, server };
}

/**
 * The tarball of packages/NAME as `npm pack` makes it (its prepack builds it), cached under the
 * temp directory by a hash of everything the build reads, so the test files that publish
 * packages build each once per change of the sources, not once each.
 */
export function packedTarball(name: PackageDir): string {
  const hash = createHash('sha256');
  for (const path of sourceFiles(name)) {
    hash.update(relative(repoRoot, path)).update('\0').update(readFileSync(path)).update('\0');
  }
  const dir = join(tmpdir(), `vault-packed-${name}-${hash.digest('hex').slice(0, 16)}`);
  const done = join(dir, 'tarball');
  if (existsSync(done)) return readFileSync(done, 'utf8');
  const lock = `${dir}.lock`;
  const deadline = Date.now() + 30 * 60_000;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      if (existsSync(done)) return readFileSync(done, 'utf8');
      if (Date.now() > deadline)
        throw new Error(`waited too long for another test to pack ${name} (${lock})`);
      execFileSync('sleep', ['1']);
    }
  }
  try {
    mkdirSync(dir, { recursive: true });
    const packed = JSON.parse(
      execFileSync('npm', ['pack', '--json', '--pack-destination', dir], {
        cwd: join(repoRoot, 'packages', name),
        encoding: 'utf8',
        env: { ...process.env, npm_config_foreground_scripts: 'false', npm_config_loglevel: 'error' },
        stdio: ['ignore', 'pipe', 'pipe'],
        maxBuffer: 64 * 1024 * 1024,
      }),
    ) as { filename: string }[];
    const tarball = join(dir, packed[0]!.filename);
    writeFileSync(done, tarball);
    // Tarballs of earlier sources are not used again.
    for (const entry of readdirSync(tmpdir())) {
      if (
        entry.startsWith(`vault-packed-${name}-`) &&
        join(tmpdir(), entry) !== dir &&
        !entry.endsWith('.lock')
      )
        rmSync(join(tmpdir(), entry), { recursive: true, force: true });
    }
    return tarball;
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/** What a package's build reads: the sources, the console, and the package's own files. */
function sourceFiles(name: PackageDir): string[] {
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.name === 'node_modules' || entry.name === 'dist') continue;
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else files.push(path);
    }
  };
  walk(join(repoRoot, 'src'));
  if (name === 'cli') walk(join(repoRoot, 'ui'));
  for (const file of ['package.json', 'tsconfig.json', 'README.md'])
    files.push(join(repoRoot, 'packages', name, file));
  files.push(join(repoRoot, 'tsconfig.json'));
  return files.filter((file) => existsSync(file)).sort();
}

/** Publishes each of packages/NAME to the registry under `version`. Returns the version. */
export function publishPackages(registry: LocalRegistry, names: PackageDir[]): string {
  const base = JSON.parse(readFileSync(join(repoRoot, 'packages/sdk/package.json'), 'utf8'))
    .version as string;
  const version = `${base}-local.${Date.now()}`;
  const work = mkdtempSync(join(tmpdir(), 'vault-publish-'));
  const env = { ...process.env, ...registry.env };
  try {
    for (const name of names) {
      const unpacked = join(work, name);
      mkdirSync(unpacked);
      execFileSync('tar', ['-xzf', packedTarball(name), '-C', unpacked]);
      const manifestPath = join(unpacked, 'package/package.json');
      const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
      writeFileSync(manifestPath, `${JSON.stringify({ ...manifest, version }, null, 2)}\n`);
      execFileSync('npm', ['publish', '--ignore-scripts', '--tag', 'latest', join(unpacked, 'package')], {
        env,
        stdio: ['ignore', 'ignore', 'inherit'],
      });
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return version;
}
