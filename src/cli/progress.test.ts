import { describe, expect, it } from 'vitest';
import { createProgress } from './progress.js';

const sink = (isTTY: boolean) => {
  const lines: string[] = [];
  return { lines, stream: { isTTY, columns: 80, write: (text: string) => lines.push(text) } };
};

describe('progress', () => {
  it('prints a line per tenth of the way when not on a terminal', () => {
    const { lines, stream } = sink(false);
    const progress = createProgress({ label: 'rotating', total: 100, stream });
    for (let i = 0; i < 100; i++) progress.tick();
    progress.finish('done');
    expect(lines.length).toBe(12); // 0%..100% in tenths, then the message
    expect(lines.at(-2)).toMatch(/rotating \[#+\] 100% 100\/100/);
    expect(lines.at(-1)).toBe('done\n');
  });

  it('redraws one line on a terminal, throttled', () => {
    const { lines, stream } = sink(true);
    let clock = 0;
    const progress = createProgress({ label: 'keys', total: 4, stream, now: () => clock });
    progress.update(1);
    clock += 10;
    progress.update(2); // throttled
    clock += 200;
    progress.update(3, 6);
    progress.finish();
    expect(lines.every((line) => line.startsWith('\r'))).toBe(true);
    expect(lines).toHaveLength(3);
    expect(lines[1]).toMatch(/ 50% 3\/6/);
    expect(lines[2]).toMatch(/100% 6\/6\n$/);
  });

  it('handles an empty job', () => {
    const { lines, stream } = sink(false);
    createProgress({ label: 'nothing', total: 0, stream }).finish();
    expect(lines.join('')).toMatch(/100% 0\/0/);
  });
});
