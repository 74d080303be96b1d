/**
 * Runs documented shell blocks as a reader would in one terminal: each block in bash with
 * `-e -o pipefail`, its shell variables and the working directory carried over to the next
 * block (bash runs with `set -a`, so a variable a block sets, `PID=$!` too, is exported and
 * kept; aliases, shell functions and jobs are not). A failure names the file and line of the
 * command that failed and ends with the block's output. Background commands (`kubectl
 * port-forward ... &`) keep running after their block, as in a terminal, and `stop()` ends every
 * process the terminal started: each carries the terminal's marker in its environment.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RunnableBlock } from './runnable-blocks.js';

export interface TerminalOptions {
  /** The directory the first block starts in. */
  cwd: string;
  env: Record<string, string>;
  /** Runs bash through this command, e.g. `['nsenter', '--net=/proc/N/ns/net']`. */
  prefix?: string[];
  /** The longest a block may run before it is killed and fails. */
  blockTimeoutMs: number;
  /** Called with each block's output as it comes (for a live log); the error keeps its end. */
  onOutput?: (chunk: string) => void;
}

/** The environment variable that marks every process a terminal started (`NAME=<state dir>`). */
export const markerVariable = 'VAULT_DOCS_RUN';

/** Every process whose environment carries `marker`, e.g. a detached `vault dev`. */
export function processesOf(marker: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/environ`, 'latin1').split('\0').includes(marker))
        pids.push(Number(entry));
    } catch {}
  }
  return pids;
}

/** Ends every process that carries `marker`: SIGTERM, `graceMs` to exit, then SIGKILL. */
export async function stopProcessesOf(marker: string, graceMs: number): Promise<void> {
  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    const pids = processesOf(marker);
    for (const pid of pids) {
      try {
        process.kill(pid, signal);
      } catch {}
    }
    if (pids.length > 0) await new Promise((resolve) => setTimeout(resolve, graceMs));
  }
}

export class Terminal {
  private readonly state = mkdtempSync(join(tmpdir(), 'vault-docs-state-'));
  private readonly marker = `${markerVariable}=${this.state}`;

  constructor(private readonly options: TerminalOptions) {
    writeFileSync(join(this.state, 'cwd'), options.cwd);
  }

  private prelude(): string {
    return [
      `cd "$(cat '${this.state}/cwd')"`,
      `if [ -f '${this.state}/env' ]; then . '${this.state}/env'; fi`,
      `trap 'echo "$LINENO" > "${this.state}/failed-line"' ERR`,
      'set -a -e -o pipefail',
    ].join('\n');
  }

  private epilogue(): string {
    return `export -p > '${this.state}/env'\npwd > '${this.state}/cwd'\n`;
  }

  /** Runs one block; throws with where it failed and the end of its output. */
  async run(block: RunnableBlock): Promise<void> {
    const { env, prefix = [], blockTimeoutMs, onOutput } = this.options;
    rmSync(join(this.state, 'failed-line'), { force: true });
    const script = `${this.prelude()}\n${block.code}${this.epilogue()}`;
    const [command, ...args] = [...prefix, 'bash', '--norc', '--noprofile', '-c', script];
    const child = spawn(command!, args, {
      env: { ...env, [markerVariable]: this.state },
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const keep = (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      onOutput?.(text);
      output = (output + text).slice(-8_000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), blockTimeoutMs);
    // 'exit', not 'close': a background command of the block keeps its output pipes open.
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    clearTimeout(timer);
    await new Promise((resolve) => setTimeout(resolve, 100)); // the last of its output
    if (code === 0) return;
    const preludeLines = this.prelude().split('\n').length;
    const failedLine = existsSync(join(this.state, 'failed-line'))
      ? Number(readFileSync(join(this.state, 'failed-line'), 'utf8')) - preludeLines
      : undefined;
    const where =
      failedLine !== undefined && failedLine >= 1
        ? `${block.file}:${block.line + failedLine} (${block.code.split('\n')[failedLine - 1]?.trim()})`
        : `${block.file}:${block.line}`;
    throw new Error(`${where}: the block exited ${code ?? 'on a signal'}; its output ends:\n${output}`);
  }

  /** Ends every process the blocks started (TERM, then KILL) and forgets the state. */
  async stop(): Promise<void> {
    await stopProcessesOf(this.marker, 2_000);
    rmSync(this.state, { recursive: true, force: true });
  }
}
