import { constants } from 'node:os';
import { UsageError } from './exit-codes.js';

/**
 * What `vault run` and `vault broker` exit with after their command: its own exit code, or
 * 128 + the signal number when it was killed, as a shell reports it.
 */
export function childExitCode(result: { exitCode: number | null; signal: NodeJS.Signals | null }): number {
  return result.exitCode ?? 128 + (result.signal ? (constants.signals[result.signal] ?? 0) : 0);
}

/** A command that could not start, as a usage error that names it; anything else as it is. */
export function childStartError(err: unknown, file: string): unknown {
  if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new UsageError(`command not found: ${file}`);
  if (err instanceof RangeError) return new UsageError(err.message);
  return err;
}
