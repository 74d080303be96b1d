/**
 * A progress bar for long work (key rotation). On a terminal it redraws one line; elsewhere
 * (CI logs) it prints a line at every tenth of the way, so logs stay short.
 */
export interface ProgressStream {
  isTTY?: boolean;
  columns?: number;
  write(text: string): unknown;
}

export interface Progress {
  /** Sets how much is done (and, if it changed, the total). */
  update(done: number, total?: number): void;
  /** Adds to what is done. */
  tick(amount?: number): void;
  /** Completes the bar and prints a closing message. */
  finish(message?: string): void;
}

export function createProgress(options: {
  label: string;
  total: number;
  stream?: ProgressStream;
  /** Clock for throttling redraws. */
  now?: () => number;
}): Progress {
  const stream = options.stream ?? process.stderr;
  const now = options.now ?? Date.now;
  let total = Math.max(options.total, 0);
  let done = 0;
  let lastDraw = Number.NEGATIVE_INFINITY;
  let lastDecile = -1;
  let finished = false;

  const render = () => {
    const fraction = total > 0 ? Math.min(done / total, 1) : 1;
    const percent = Math.floor(fraction * 100);
    const width = Math.max(10, Math.min(40, (stream.columns ?? 80) - options.label.length - 30));
    const filled = Math.round(fraction * width);
    return `${options.label} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${String(percent).padStart(3)}% ${done}/${total}`;
  };

  const draw = (force: boolean) => {
    if (finished) return;
    if (stream.isTTY) {
      if (!force && now() - lastDraw < 100) return;
      lastDraw = now();
      stream.write(`\r${render()}`);
      return;
    }
    const decile = total > 0 ? Math.floor((Math.min(done, total) / total) * 10) : 10;
    if (decile > lastDecile || force) {
      lastDecile = decile;
      stream.write(`${render()}\n`);
    }
  };

  return {
    update(value, newTotal) {
      if (newTotal !== undefined) total = Math.max(newTotal, 0);
      done = Math.max(0, value);
      draw(false);
    },
    tick(amount = 1) {
      done += amount;
      draw(false);
    },
    finish(message) {
      if (finished) return;
      done = Math.max(done, total);
      if (stream.isTTY) stream.write(`\r${render()}\n`);
      else if (lastDecile < 10) stream.write(`${render()}\n`);
      finished = true;
      if (message) stream.write(`${message}\n`);
    },
  };
}
