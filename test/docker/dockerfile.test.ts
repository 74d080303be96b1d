/**
 * No Docker engine runs here, so this suite checks what the image build would do: the
 * Dockerfile's structure (stages, base family, tags, user, contents, start command), then it
 * runs the build's compile step into a temporary /app layout and starts the image's command
 * against it, as the image's user when the tests run as root, with the application tree
 * treated as a read-only root filesystem: only the data directory may change.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  cpSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateRootKeyFile } from '../../src/crypto/root-key.js';
import { parseDockerfile } from './dockerfile.js';
import { baseFamily, imageProblems, startCommand } from './image-policy.js';

const repo = resolve(import.meta.dirname, '../..');
const dockerfileText = readFileSync(join(repo, 'Dockerfile'), 'utf8');
const dockerignore = readFileSync(join(repo, '.dockerignore'), 'utf8');
const IMAGE_UID = 10001;

describe('Dockerfile', () => {
  const dockerfile = parseDockerfile(dockerfileText);

  it('conforms to the image policy', () => {
    expect(imageProblems(dockerfile, dockerignore)).toEqual([]);
    expect(dockerfile.stages.map((stage) => stage.name)).toEqual(['build', 'runtime']);
    const user = dockerfile.stages[1]!.instructions.filter((i) => i.keyword === 'USER').at(-1)!.args;
    expect(user).toBe(`${IMAGE_UID}:${IMAGE_UID}`);
  });

  it('flags a latest or missing tag, a root user, mixed libcs and stray files', () => {
    const variant = (from: string | RegExp, to: string) => {
      expect(dockerfileText).toMatch(from);
      return imageProblems(parseDockerfile(dockerfileText.replace(from, to)), dockerignore).join('\n');
    };
    expect(variant('ARG NODE_IMAGE=node:22-bookworm-slim', 'ARG NODE_IMAGE=node:latest')).toMatch(
      /latest tag/,
    );
    expect(variant('ARG NODE_IMAGE=node:22-bookworm-slim', 'ARG NODE_IMAGE=node')).toMatch(/no tag/);
    expect(variant('USER 10001:10001', 'USER root')).toMatch(/runs as root/);
    expect(variant('USER 10001:10001', '')).toMatch(/no USER/);
    expect(variant(/FROM \S+ AS runtime/, 'FROM node:22-alpine AS runtime')).toMatch(/differ/);
    expect(variant('COPY --from=build /src/bin ./bin', 'COPY --from=build /src/src ./src')).toMatch(
      /does not belong/,
    );
    expect(variant('COPY --from=build /src/bin ./bin', 'COPY bin ./bin')).toMatch(/build context/);
    expect(variant('CMD ["server"]', 'CMD server')).toMatch(/CMD must be/);
    expect(variant('npm prune --omit=dev', 'true')).toMatch(/prune/);
    expect(imageProblems(dockerfile, dockerignore.replace('!src/', ''))).toEqual([
      '.dockerignore leaves src out of the build context, but the build copies it',
    ]);
    expect(baseFamily('node:22-alpine')).toBe('musl');
    expect(baseFamily('gcr.io/distroless/nodejs22-debian12:nonroot')).toBe('glibc-debian12');
  });

  it('rejects a Dockerfile it cannot read', () => {
    expect(() => parseDockerfile('RUN true\nFROM node:22-bookworm-slim\n')).toThrow(/before the first FROM/);
    expect(() => parseDockerfile('FROM node:22-bookworm-slim\nRUN true \\')).toThrow(/continued/);
  });
});

/** The build stage's compile step and the runtime's start command, without an engine. */
describe('image build and start command', () => {
  const dockerfile = parseDockerfile(dockerfileText);
  let base: string;
  let app: string;
  let data: string;
  let home: string;
  let rootKeyFile: string;
  let build: { code: number; output: string };
  const children = new Set<ChildProcess>();
  const runAs = process.getuid?.() === 0 ? { uid: IMAGE_UID, gid: IMAGE_UID } : {};

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'vault-image-'));
    chmodSync(base, 0o755);
    app = join(base, 'app');
    data = join(base, 'data');
    home = join(base, 'nonexistent');
    mkdirSync(app);
    // The same compiler and config as `npm run build` (tsc -p tsconfig.build.json), into /app/dist.
    build = await new Promise((done) => {
      execFile(
        process.execPath,
        [
          join(repo, 'node_modules/typescript/bin/tsc'),
          '-p',
          'tsconfig.build.json',
          '--outDir',
          join(app, 'dist'),
        ],
        { cwd: repo, maxBuffer: 16 * 1024 * 1024 },
        (err, stdout, stderr) => done({ code: err ? Number(err.code ?? 1) : 0, output: stdout + stderr }),
      );
    });
    // What the runtime stage copies: package.json, bin, dist and node_modules (a link here).
    cpSync(join(repo, 'package.json'), join(app, 'package.json'));
    cpSync(join(repo, 'bin'), join(app, 'bin'), { recursive: true });
    symlinkSync(join(repo, 'node_modules'), join(app, 'node_modules'), 'dir');
    mkdirSync(data, { mode: 0o700 });
    const secrets = join(base, 'secrets');
    mkdirSync(secrets, { mode: 0o700 });
    rootKeyFile = join(secrets, 'root.key');
    await generateRootKeyFile(rootKeyFile);
    if (runAs.uid !== undefined) {
      for (const path of [data, secrets, rootKeyFile]) chownSync(path, IMAGE_UID, IMAGE_UID);
    }
  }, 120_000);

  afterAll(() => {
    for (const child of children) child.kill('SIGKILL');
    rmSync(base, { recursive: true, force: true });
  });

  /** Runs `docker run IMAGE args...` as a process: the image's env and argv, /app and /data mapped here. */
  const run = (args: string[], extraEnv: Record<string, string> = {}) => {
    const { env, argv } = startCommand(dockerfile, args);
    const mapPath = (value: string) => value.replace(/^\/app(?=\/|$)/, app).replace(/^\/data(?=\/|$)/, data);
    const mappedEnv = Object.fromEntries(Object.entries(env).map(([key, value]) => [key, mapPath(value)]));
    const [command, ...rest] = argv;
    expect(command).toBe('node');
    const child = spawn(process.execPath, rest.map(mapPath), {
      cwd: app,
      env: { PATH: process.env.PATH ?? '', ...mappedEnv, HOME: home, TMPDIR: home, ...extraEnv },
      stdio: ['ignore', 'pipe', 'pipe'],
      ...runAs,
    });
    children.add(child);
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
    });
    const exited = new Promise<number | string>((done) =>
      child.once('exit', (code, signal) => {
        children.delete(child);
        done(code ?? signal ?? -1);
      }),
    );
    return { child, exited, output: () => output };
  };

  it('compiles with the build configuration (npm run build)', () => {
    expect(build.output.trim(), `tsc -p tsconfig.build.json failed:\n${build.output}`).toBe('');
    expect(build.code).toBe(0);
  });

  it('starts the compiled server, answers /healthz and /readyz, and writes only under /data', async () => {
    expect(lstatSync(join(app, 'dist/cli/main.js')).isFile()).toBe(true);
    const before = snapshot(base, [data]);
    const server = run([
      'server',
      '--root-key-file',
      rootKeyFile,
      '--listen',
      '127.0.0.1:0',
      '--audit-log',
      'none',
    ]);
    const url = await waitFor(
      () => /"url":"(http:\/\/127\.0\.0\.1:\d+)"/.exec(server.output())?.[1],
      server,
      60_000,
    );
    const health = await fetch(`${url}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    const ready = await fetch(`${url}/readyz`);
    expect(ready.status).toBe(200);
    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    // The embedded store lives in the data volume, and nothing else in the tree changed.
    expect(readdirSync(data).length).toBeGreaterThan(0);
    expect(snapshot(base, [data])).toEqual(before);
    expect(() => lstatSync(home)).toThrow(/ENOENT/);
  }, 90_000);

  it('refuses the image default of 0.0.0.0 without TLS, with a message that says what to do', async () => {
    const server = run(['server', '--root-key-file', rootKeyFile, '--audit-log', 'none']);
    expect(await server.exited).toBe(2);
    expect(server.output()).toMatch(/without TLS/);
    expect(server.output()).toMatch(/--tls-cert-file/);
  }, 60_000);

  it('fails clearly when the root key is missing', async () => {
    const server = run(['server', '--listen', '127.0.0.1:0', '--audit-log', 'none']);
    expect(await server.exited).toBe(2);
    expect(server.output()).toMatch(/root key is required/);
  }, 60_000);
});

/** Path → type, size, mode and mtime of everything under `root` (not following links), except `skip`. */
function snapshot(root: string, skip: string[]): Record<string, string> {
  const entries: Record<string, string> = {};
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (skip.includes(path)) continue;
      const stat = lstatSync(path);
      const kind = stat.isSymbolicLink() ? 'link' : stat.isDirectory() ? 'dir' : 'file';
      entries[path.slice(root.length)] = `${kind} ${stat.size} ${stat.mode.toString(8)} ${stat.mtimeMs}`;
      if (kind === 'dir') walk(path);
    }
  };
  walk(root);
  return entries;
}

async function waitFor<T>(
  probe: () => T | undefined,
  proc: { exited: Promise<unknown>; output(): string },
  timeoutMs: number,
): Promise<T> {
  let exited = false;
  void proc.exited.then(() => {
    exited = true;
  });
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = probe();
    if (value !== undefined) return value;
    if (exited) throw new Error(`the process exited before it was ready:\n${proc.output()}`);
    await new Promise((done) => setTimeout(done, 100));
  }
  throw new Error(`not ready within ${timeoutMs} ms:\n${proc.output()}`);
}
