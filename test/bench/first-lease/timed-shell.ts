/**
 * Runs documented shell blocks as a reader would in one terminal (as test/docs/runnable.test.ts
 * does: bash with `-e -o pipefail`, exported variables and the working directory carried over
 * to the next block) and times each command of a block. Bash traces every command it runs with
 * the script line and the time it started (`set -x` to a file of its own, `PS4` with
 * `$LINENO` and `$EPOCHREALTIME`); a command's time runs from its start to the start of the
 * next command of the block, or to the block's end. Commands of a sourced file or a command
 * substitution count in the line that ran them.
 *
 * Every process the blocks start carries the terminal's marker in its environment, and
 * `stop()` ends them all (a detached `vault dev` too).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { markerVariable, stopProcessesOf } from '../../docs/block-runner.js';
import type { RunnableBlock } from '../../docs/runnable-blocks.js';

export interface TimedStep {
  /** Line in the Markdown file where the command starts. */
  line: number;
  /** The command's first line, as the page shows it. */
  text: string;
  ms: number;
}

export interface TimedBlock {
  block: RunnableBlock;
  ms: number;
  steps: TimedStep[];
  output: string;
}

/** One trace line of a top-level command of the script: `+:LINE:SECONDS.MICROS command`. */
const traceLine = /^\+:(\d+):(\d+\.\d+) /;

export class TimedTerminal {
  private readonly state = mkdtempSync(join(tmpdir(), 'vault-bench-terminal-'));
  private readonly marker = `${markerVariable}=${this.state}`;

  constructor(
    cwd: string,
    private readonly env: Record<string, string>,
    private readonly blockTimeoutMs = 20 * 60_000,
  ) {
    writeFileSync(join(this.state, 'cwd'), cwd);
  }

  private prelude(): string {
    return [
      `cd "$(cat '${this.state}/cwd')"`,
      `if [ -f '${this.state}/env' ]; then . '${this.state}/env'; fi`,
      `trap 'echo "$LINENO" > "${this.state}/failed-line"' ERR`,
      'set -e -o pipefail',
      `exec 19>'${this.state}/trace'; BASH_XTRACEFD=19; PS4='+\${BASH_SOURCE[0]-}:\${LINENO}:\${EPOCHREALTIME} '; set -x`,
    ].join('\n');
  }

  private epilogue(): string {
    return `{ set +x; } 2>/dev/null\nexport -p > '${this.state}/env'\npwd > '${this.state}/cwd'\nenv -0 > '${this.state}/environ'\n`;
  }

  /** The environment and directory the terminal is in after the last block. */
  shell(): { env: Record<string, string>; cwd: string } {
    const env: Record<string, string> = {};
    for (const entry of readFileSync(join(this.state, 'environ'), 'utf8').split('\0')) {
      const eq = entry.indexOf('=');
      if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
    }
    delete env[markerVariable];
    return { env, cwd: readFileSync(join(this.state, 'cwd'), 'utf8').trim() };
  }

  /** Runs one block and times its commands; throws with where it failed and its output. */
  async run(block: RunnableBlock): Promise<TimedBlock> {
    rmSync(join(this.state, 'failed-line'), { force: true });
    rmSync(join(this.state, 'trace'), { force: true });
    const prelude = this.prelude();
    const preludeLines = prelude.split('\n').length;
    const script = `${prelude}\n${block.code}${this.epilogue()}`;
    const started = performance.now();
    const startedEpoch = Date.now() / 1000;
    const child = spawn('bash', ['--norc', '--noprofile', '-c', script], {
      env: { ...this.env, [markerVariable]: this.state },
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const keep = (chunk: Buffer) => {
      output = (output + chunk.toString('utf8')).slice(-8_000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), this.blockTimeoutMs);
    // 'exit', not 'close': a background process of the block may keep the pipes open.
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    const ms = performance.now() - started;
    const endedEpoch = startedEpoch + ms / 1000;
    clearTimeout(timer);
    await new Promise((resolve) => setTimeout(resolve, 50)); // the last of its output
    if (code !== 0) {
      const failedLine = existsSync(join(this.state, 'failed-line'))
        ? Number(readFileSync(join(this.state, 'failed-line'), 'utf8')) - preludeLines
        : undefined;
      const where =
        failedLine !== undefined && failedLine >= 1
          ? `${block.file}:${block.line + failedLine} (${block.code.split('\n')[failedLine - 1]?.trim()})`
          : `${block.file}:${block.line}`;
      throw new Error(`${where}: the block exited ${code ?? 'on a signal'}; its output ends:\n${output}`);
    }
    const trace = readFileSync(join(this.state, 'trace'), 'utf8');
    rmSync(join(this.state, 'trace'), { force: true }); // it traced `. ~/vault.env` too
    return { block, ms, output, steps: stepsOf(block, trace, preludeLines, endedEpoch) };
  }

  /** Ends every process the blocks started (TERM, then KILL) and forgets the state. */
  async stop(): Promise<void> {
    await stopProcessesOf(this.marker, 1_000);
    rmSync(this.state, { recursive: true, force: true });
  }
}

/** The block's commands with the time from each one's start to the next one's. */
function stepsOf(block: RunnableBlock, trace: string, preludeLines: number, endedEpoch: number): TimedStep[] {
  const lines = block.code.split('\n');
  const starts: { index: number; at: number }[] = [];
  for (const raw of trace.split('\n')) {
    const match = traceLine.exec(raw);
    if (!match) continue;
    const index = Number(match[1]) - preludeLines - 1; // 0-based line of the block
    if (index < 0 || index >= lines.length - 1) continue; // the prelude, the epilogue
    if (starts.some((start) => start.index === index)) continue;
    // A continuation line (the one before ends in `\`) is part of the command above it.
    let first = index;
    while (first > 0 && lines[first - 1]!.trimEnd().endsWith('\\')) first--;
    if (first !== index && starts.some((start) => start.index === first)) continue;
    starts.push({ index: first, at: Number(match[2]) });
  }
  starts.sort((a, b) => a.at - b.at);
  return starts.map((start, i) => ({
    line: block.line + 1 + start.index,
    text: lines[start.index]!.trim(),
    ms: ((starts[i + 1]?.at ?? endedEpoch) - start.at) * 1000,
  }));
}
