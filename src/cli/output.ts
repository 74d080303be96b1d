/** Output for people (aligned tables, relative times) and for scripts (`--json`). */
import { formatDuration } from '../lib/duration.js';

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Prints rows as aligned columns under a header; an empty list prints `empty` instead. */
export function printTable(header: string[], rows: string[][], empty = '(none)'): void {
  if (rows.length === 0) {
    process.stdout.write(`${empty}\n`);
    return;
  }
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)),
  );
  const line = (cells: string[]) =>
    cells
      .map((cell, column) => (column === cells.length - 1 ? cell : cell.padEnd(widths[column]!)))
      .join('  ')
      .trimEnd();
  process.stdout.write(`${[line(header), ...rows.map(line)].join('\n')}\n`);
}

/** Prints `key: value` lines. */
export function printFields(fields: [string, string | undefined][]): void {
  const shown = fields.filter((field): field is [string, string] => field[1] !== undefined);
  const width = Math.max(...shown.map(([key]) => key.length));
  process.stdout.write(
    `${shown.map(([key, value]) => `${`${key}:`.padEnd(width + 1)} ${value}`).join('\n')}\n`,
  );
}

/** "in 14m59s", "3m ago". */
export function relativeTime(date: Date, now = Date.now()): string {
  // Whole seconds: people read "in 14m59s", not "in 14m59s989ms".
  const delta = Math.round((date.getTime() - now) / 1000) * 1000;
  return delta >= 0 ? `in ${formatDuration(Math.max(delta, 1000))}` : `${formatDuration(-delta)} ago`;
}

/**
 * When something happened: "3m ago", or "just now" for the last second and for a time a
 * little ahead of this machine's clock (the server's clock may run ahead of it).
 */
export function timeAgo(date: Date, now = Date.now()): string {
  return date.getTime() > now - 1000 ? 'just now' : relativeTime(date, now);
}

export const formatLabels = (labels: Record<string, string> | undefined) =>
  Object.entries(labels ?? {})
    .map(([key, value]) => `${key}=${value}`)
    .join(',');
