import { describe, expect, it } from 'vitest';
import { globMatch } from './glob.js';

describe('globMatch', () => {
  it.each([
    ['*', 'anything', true],
    ['*', '', true],
    ['stripe-*', 'stripe-api-key', true],
    ['stripe-*', 'stripe', false],
    ['*-key', 'stripe-api-key', true],
    ['s?ripe', 'stripe', true],
    ['s?ripe', 'sripe', false],
    ['a*b*c', 'a-x-b-y-c', true],
    ['a*b*c', 'a-x-c-y-b', false],
    ['exact', 'exact', true],
    ['exact', 'exactly', false],
    ['*.prod', 'db.prod', true],
    ['*.prod', 'dbxprod', false],
  ])('%s ~ %s → %s', (pattern, name, expected) => {
    expect(globMatch(pattern, name)).toBe(expected);
  });

  it('takes linear time on patterns that make regular expressions backtrack', () => {
    const pattern = '*a*a*a*a*a*a*a*a*a*b';
    const name = 'a'.repeat(253);
    const started = process.hrtime.bigint();
    expect(globMatch(pattern, name)).toBe(false);
    // Generous bound: a backtracking regex takes minutes here.
    expect(Number(process.hrtime.bigint() - started) / 1e6).toBeLessThan(1000);
  });
});
