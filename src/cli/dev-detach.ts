/**
 * `vault dev --detach`: starts the same command without `--detach` as a background process in
 * its own session (so a closed terminal or a killed parent does not take it down), waits until
 * it has written its env file, prints the export lines and returns 0; or, when the server
 * cannot start, prints why and returns 1. Its log goes to DATA_DIR/dev.log.
 *
 * When the env file already names a `vault dev` that is running and answers, it starts none
 * and prints that file: quick starts and scripts can all begin with the same line.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const startTimeoutMs = 120_000;

/** Set for the background server: it outlives the command that started it. */
export const detachedEnv = 'VAULT_DEV_DETACHED';

export async function detach(options: { envFile: string; dataDir: string }): Promise<number> {
  const running = await runningServer(options.envFile);
  if (running) {
    process.stdout.write(running.text);
    process.stderr.write(
      `vault dev is already running (pid ${running.pid}, ${running.addr}); using it. Stop it with kill ${running.pid}.\n`,
    );
    return 0;
  }
  mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
  const logFile = join(options.dataDir, 'dev.log');
  const log = openSync(logFile, 'w', 0o600);
  // `--env-file` is spelled `--export-file` for the child: Node 20 would read it as its own.
  const args = process.argv
    .slice(2)
    .filter((arg) => arg !== '--detach')
    .map((arg) => arg.replace(/^--env-file(?==|$)/, '--export-file'));
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1]!, ...args], {
    detached: true,
    env: { ...process.env, [detachedEnv]: '1' },
    stdio: ['ignore', 'ignore', log],
  });
  let exited: string | undefined;
  child.once('exit', (code, signal) => {
    exited = signal ?? String(code);
  });
  const deadline = Date.now() + startTimeoutMs;
  // The child removes a stale env file before it starts; wait for that, then for the new one.
  let cleared = false;
  while (exited === undefined && Date.now() < deadline) {
    const present = existsSync(options.envFile);
    if (!present) cleared = true;
    const text = present && cleared ? readFileSync(options.envFile, 'utf8') : '';
    if (text.includes(`export VAULT_DEV_PID=${child.pid}\n`)) {
      child.unref();
      process.stdout.write(text);
      process.stderr.write(
        `vault dev is running in the background (pid ${child.pid}, log ${logFile}); stop it with kill ${child.pid}.\n`,
      );
      return 0;
    }
    await sleep(50);
  }
  const why =
    exited === undefined ? `did not become ready in ${startTimeoutMs / 1000}s` : `exited (${exited})`;
  if (exited === undefined) child.kill('SIGTERM');
  const tail = readFileSync(logFile, 'utf8').trim().split('\n').slice(-5).join('\n');
  process.stderr.write(`vault dev: the background server ${why}:\n${tail}\n`);
  return 1;
}

/** The server an existing env file names, if that process lives and answers at its address. */
async function runningServer(
  envFile: string,
): Promise<{ text: string; pid: number; addr: string } | undefined> {
  if (!existsSync(envFile)) return undefined;
  const text = readFileSync(envFile, 'utf8');
  const pid = Number(/^export VAULT_DEV_PID=(\d+)$/m.exec(text)?.[1]);
  const addr = /^export VAULT_ADDR=(\S+)$/m.exec(text)?.[1];
  if (!pid || !addr) return undefined;
  try {
    process.kill(pid, 0);
  } catch {
    return undefined;
  }
  const answers = await fetch(`${addr}/healthz`, { signal: AbortSignal.timeout(5_000) }).then(
    (response) => response.ok,
    () => false,
  );
  return answers ? { text, pid, addr } : undefined;
}
