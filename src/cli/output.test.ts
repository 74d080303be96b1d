import { describe, expect, it } from 'vitest';
import { relativeTime, timeAgo } from './output.js';

describe('relativeTime', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  it.each([
    [899_989, 'in 15m'],
    [60_400, 'in 1m'],
    [200, 'in 1s'],
    [-61_400, '1m1s ago'],
    [-3_600_000, '1h ago'],
  ])('%i ms from now → %s', (delta, expected) => {
    expect(relativeTime(new Date(now + delta), now)).toBe(expected);
  });
});

describe('timeAgo', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  it.each([
    [-61_400, '1m1s ago'],
    [-400, 'just now'],
    // A server clock a little ahead of this one: still the past, not "in 2s".
    [1_600, 'just now'],
  ])('%i ms from now → %s', (delta, expected) => {
    expect(timeAgo(new Date(now + delta), now)).toBe(expected);
  });
});
