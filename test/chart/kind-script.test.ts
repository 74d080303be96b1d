/**
 * test/e2e/kind/run.sh needs Docker and kind, which CI does not have; it must fail loudly
 * (exit 1 with a clear message), never skip. These run it with a PATH that lacks them.
 */
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot } from './support.js';

const script = join(repoRoot, 'test', 'e2e', 'kind', 'run.sh');
const bin = mkdtempSync(join(tmpdir(), 'vault-kind-path-'));
afterAll(() => rmSync(bin, { recursive: true, force: true }));

/** A directory holding only the given fake commands, each a tiny sh script. */
function pathWith(commands: Record<string, string>): string {
  const dir = mkdtempSync(join(bin, 'p-'));
  for (const [name, body] of Object.entries(commands)) {
    const file = join(dir, name);
    writeFileSync(file, `#!/bin/sh\n${body}\n`);
    chmodSync(file, 0o755);
  }
  return dir;
}

function run(path: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    // bash by absolute path: the PATH under test need not contain it.
    execFile(
      '/bin/bash',
      [script],
      { env: { PATH: path, HOME: bin }, timeout: 30_000 },
      (err, stdout, stderr) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
      },
    );
  });
}

describe('test/e2e/kind/run.sh prerequisites', () => {
  it('exits 1 saying docker is missing when it is not on PATH', async () => {
    const result = await run(pathWith({}));
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('run.sh: error: docker is not installed or not on PATH');
  });

  it('exits 1 saying the engine is unreachable when `docker info` fails', async () => {
    const result = await run(pathWith({ docker: 'echo "Cannot connect to the Docker daemon" >&2; exit 1' }));
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('the Docker engine is not reachable');
  });

  it('exits 1 saying kind is missing when docker works but kind is absent', async () => {
    const result = await run(pathWith({ docker: 'exit 0' }));
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('run.sh: error: kind is not installed or not on PATH');
  });

  it('exits 1 naming kubectl and helm when they are the ones missing', async () => {
    const noKubectl = await run(pathWith({ docker: 'exit 0', kind: 'exit 0' }));
    expect(noKubectl.code).toBe(1);
    expect(noKubectl.stderr).toContain('kubectl is not installed');
    const noHelm = await run(pathWith({ docker: 'exit 0', kind: 'exit 0', kubectl: 'exit 0' }));
    expect(noHelm.code).toBe(1);
    expect(noHelm.stderr).toContain('helm is not installed');
  });
});
