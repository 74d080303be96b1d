/**
 * Runs a command with secrets in its environment and scrubs them from its output. Shared by
 * the MCP tool `run_with_credentials` (captured, bounded output and run time) and `vault run`
 * (output streamed to the terminal). The values never appear in what this returns or writes.
 */
import { spawn } from 'node:child_process';
import { createScrubber, type Secret } from './scrub.js';

export interface RunScrubbedOptions {
  file: string;
  args: string[];
  /** The complete environment of the command (secrets included). */
  env: Record<string, string>;
  /** Values to remove from the output. */
  secrets: Secret[];
  cwd?: string;
  /** Killed (its whole process group when `detached`) after this long. */
  timeoutMs?: number;
  /** Per stream, after scrubbing; the rest is counted and dropped. */
  maxOutputChars?: number;
  /** Give the command the caller's stdin (interactive use); otherwise it reads nothing. */
  inheritStdin?: boolean;
  /** Run in its own process group so a timeout kills everything it started. */
  detached?: boolean;
  /** Receive scrubbed output as it arrives (instead of only in the result). */
  onStdout?: (text: string) => void;
  onStderr?: (text: string) => void;
  /** Stops the command (SIGTERM, then SIGKILL). */
  signal?: AbortSignal;
}

export interface RunScrubbedResult {
  /** The exit code, or null when killed by a signal. */
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  /** Scrubbed output (empty when streamed through onStdout/onStderr). */
  stdout: string;
  stderr: string;
  /** Characters dropped past maxOutputChars. */
  stdoutDropped: number;
  stderrDropped: number;
  durationMs: number;
}

const killGraceMs = 2_000;

export function runScrubbed(options: RunScrubbedOptions): Promise<RunScrubbedResult> {
  // Node would refuse such a variable with an error that quotes the whole value.
  for (const [name, value] of Object.entries(options.env)) {
    if (value.includes('\0')) {
      return Promise.reject(
        new RangeError(
          `the value for ${name} contains a NUL byte, which an environment variable cannot hold`,
        ),
      );
    }
  }
  const scrubber = createScrubber(options.secrets);
  const started = Date.now();
  const max = options.maxOutputChars ?? Number.POSITIVE_INFINITY;

  return new Promise((resolve, reject) => {
    const child = spawn(options.file, options.args, {
      env: options.env,
      ...(options.cwd !== undefined && { cwd: options.cwd }),
      stdio: [options.inheritStdin ? 'inherit' : 'ignore', 'pipe', 'pipe'],
      detached: options.detached ?? false,
    });

    const capture = (emit: ((text: string) => void) | undefined) => {
      const stream = scrubber.stream();
      const state = { text: '', dropped: 0 };
      const take = (text: string) => {
        if (text === '') return;
        if (emit) return emit(text);
        const room = max - state.text.length;
        if (room >= text.length) state.text += text;
        else {
          state.text += text.slice(0, Math.max(room, 0));
          state.dropped += text.length - Math.max(room, 0);
        }
      };
      return { state, push: (chunk: string) => take(stream.push(chunk)), end: () => take(stream.end()) };
    };
    const out = capture(options.onStdout);
    const err = capture(options.onStderr);
    child.stdout.setEncoding('utf8').on('data', out.push);
    child.stderr.setEncoding('utf8').on('data', err.push);

    let timedOut = false;
    let killTimer: NodeJS.Timeout | undefined;
    const kill = () => {
      const signalAll = (sig: NodeJS.Signals) => {
        try {
          if (options.detached && child.pid !== undefined) process.kill(-child.pid, sig);
          else child.kill(sig);
        } catch {
          // already gone
        }
      };
      signalAll('SIGTERM');
      killTimer ??= setTimeout(() => signalAll('SIGKILL'), killGraceMs);
    };
    const timer =
      options.timeoutMs !== undefined
        ? setTimeout(() => {
            timedOut = true;
            kill();
          }, options.timeoutMs)
        : undefined;
    options.signal?.addEventListener('abort', kill, { once: true });

    child.once('error', (error) => {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', kill);
      reject(error);
    });
    child.once('close', (exitCode, signal) => {
      clearTimeout(timer);
      clearTimeout(killTimer);
      options.signal?.removeEventListener('abort', kill);
      out.end();
      err.end();
      resolve({
        exitCode,
        signal,
        timedOut,
        stdout: out.state.text,
        stderr: err.state.text,
        stdoutDropped: out.state.dropped,
        stderrDropped: err.state.dropped,
        durationMs: Date.now() - started,
      });
    });
  });
}
