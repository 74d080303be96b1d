import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reviewOf } from '../webhook/support.js';

// Red team, session 9c: one pod stalls the webhook for every namespace.
//
// Attack: a namespace user creates (directly, not through a Deployment, so nothing validates
// the object before mutating admission) one opted-in pod with a few thousand
// `credential-<file>` annotations and a few thousand containers, ~360 KB of JSON, well under
// the API server's request limit and the webhook's own 3 MiB. mutate() is synchronous and its
// work is files x containers (decideFileAccess checks every file for every mounting container,
// building a group Set per check): 5,000 x 5,000 takes seconds of CPU, 20,000 x 20,000 (1.4 MB)
// about a minute, during which the single-threaded webhook answers nothing.
//
// Impact: with `failurePolicy: Fail` and a 10 s admission timeout, opted-in pods of every
// other namespace are refused while the webhook is busy; repeating the POST keeps it so. The
// pod itself is refused afterwards by validation (or by the agent, which accepts at most 64
// files), so the attacker pays nothing. A webhook replica count does not help much: each POST
// takes out one replica.
//
// Fix: the webhook bounds the work per review before doing it: it refuses more files than
// the agent accepts (64) and does work linear in the pod's size, so an unrelated review is
// answered promptly while a hostile one is being decided.

function review(namespace: string, files: number, containers: number) {
  const annotations: Record<string, string> = {};
  for (let i = 0; i < files; i++) annotations[`vault.ghoststack.io/credential-f${i}`] = 'c';
  return reviewOf(
    {
      metadata: { namespace, labels: { 'vault.ghoststack.io/inject': 'true' }, annotations },
      spec: { containers: Array.from({ length: containers }, (_, i) => ({ name: `c${i}`, image: 'i' })) },
    },
    { uid: `${namespace}-${files}`, namespace },
  );
}

describe('webhook: a hostile pod does not stall admission for other namespaces', () => {
  // The webhook in a process of its own, as deployed: the test's clients keep their clock.
  const root = fileURLToPath(new URL('../../', import.meta.url));
  const dir = mkdtempSync(join(tmpdir(), 'session9c-stall-'));
  let child: ChildProcess;
  let url: string;
  beforeAll(async () => {
    const script = join(dir, 'webhook.ts');
    writeFileSync(
      script,
      `import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { silentLogger } from ${JSON.stringify(join(root, 'src/lib/logger.ts'))};
import { defaultMutateConfig } from ${JSON.stringify(join(root, 'src/webhook/mutate.ts'))};
import { createAdmissionHandler } from ${JSON.stringify(join(root, 'src/webhook/server.ts'))};
const { Registry } = createRequire(${JSON.stringify(join(root, 'package.json'))})('prom-client');
const config = defaultMutateConfig({ agentImage: 'ghcr.io/ghoststack/vault:0.1.0', vaultAddr: 'https://v:8200' });
const server = createServer(createAdmissionHandler({ config, logger: silentLogger, registry: new Registry() }));
server.listen(0, '127.0.0.1', () => console.log('PORT', server.address().port));
`,
    );
    // One process (no tsx wrapper), so killing it leaves nothing behind.
    const loader = pathToFileURL(join(root, 'node_modules/tsx/dist/loader.mjs')).href;
    child = spawn(process.execPath, ['--import', loader, script], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const port = await new Promise<number>((resolve, reject) => {
      let out = '';
      child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
        out += chunk;
        const match = /PORT (\d+)/.exec(out);
        if (match) resolve(Number(match[1]));
      });
      child.once('exit', (code) => reject(new Error(`webhook exited ${code}`)));
    });
    url = `http://127.0.0.1:${port}/mutate`;
  }, 30_000);
  afterAll(() => {
    child?.kill('SIGKILL');
    child?.stdout?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  const post = async (body: unknown) => {
    const res = await fetch(url, { method: 'POST', body: JSON.stringify(body) });
    return (await res.json()) as { response: { allowed: boolean } };
  };

  it("another namespace's pod is answered within a second while a 5,000-file, 5,000-container pod is decided", async () => {
    const hostile = post(review('attacker', 5_000, 5_000));
    await new Promise((resolve) => setTimeout(resolve, 200));
    const started = performance.now();
    const victim = await post(review('victim', 1, 1));
    const waited = performance.now() - started;
    expect(victim.response.allowed).toBe(true);
    await hostile;
    expect(Math.round(waited)).toBeLessThan(1_000);
  }, 60_000);
});
