import { describe, expect, it } from 'vitest';
import type { PolicyBody } from '../contract/policies.js';
import type { Principal } from './context.js';
import { decide, mayActFor } from './policy-engine.js';

const principal = (policies: string[], type: 'human' | 'agent' = 'human'): Principal => ({
  tenant: 't',
  identity: { type, name: 'someone' },
  policies,
  system: false,
});

const policies = new Map<string, PolicyBody>([
  ['app-admin', { rules: [{ credentials: ['app-*'], actions: ['admin'] }] }],
  ['team-admin', { rules: [{ labels: { team: 'a' }, actions: ['admin'] }] }],
  ['tenant-admin', { rules: [{ actions: ['admin'] }] }],
  [
    'leaser',
    {
      rules: [
        { credentials: ['db-*'], actions: ['lease'], maxTtl: '30m' },
        { labels: { env: 'dev' }, actions: ['lease'] },
      ],
    },
  ],
  ['lister', { rules: [{ credentials: ['db-*'], actions: ['list'] }] }],
  ['delegate', { rules: [], actFor: [{ type: 'agent', name: 'claude-*' }] }],
]);

describe('decide', () => {
  it('denies by default', () => {
    expect(decide(principal([]), policies, 'lease', { name: 'db-main', metadata: {} }).allowed).toBe(false);
    expect(decide(principal(['unknown-policy']), policies, 'admin').allowed).toBe(false);
  });

  it('a credential-scoped admin rule administers those credentials, not the tenant', () => {
    const p = principal(['app-admin']);
    expect(decide(p, policies, 'admin').allowed).toBe(false);
    expect(decide(p, policies, 'delete', { name: 'app-web', metadata: {} }).allowed).toBe(true);
    expect(decide(p, policies, 'delete', { name: 'db-main', metadata: {} }).allowed).toBe(false);
    expect(decide(principal(['team-admin']), policies, 'admin').allowed).toBe(false);
    expect(decide(principal(['tenant-admin']), policies, 'admin').allowed).toBe(true);
  });

  it('matches name globs or labels and takes the largest cap of the matching rules', () => {
    const p = principal(['leaser']);
    expect(decide(p, policies, 'lease', { name: 'db-main', metadata: {} })).toMatchObject({
      allowed: true,
      maxTtlMs: 1_800_000,
    });
    const devDb = decide(p, policies, 'lease', { name: 'db-dev', metadata: { env: 'dev' } });
    expect(devDb.allowed).toBe(true);
    expect(devDb.maxTtlMs).toBeUndefined();
    expect(decide(p, policies, 'lease', { name: 'api', metadata: { env: 'prod' } }).allowed).toBe(false);
    expect(decide(p, policies, 'reveal', { name: 'db-main', metadata: {} }).allowed).toBe(false);
  });

  it('lets a scoped list rule start a listing (filtered per credential)', () => {
    const p = principal(['lister']);
    expect(decide(p, policies, 'list').allowed).toBe(true);
    expect(decide(p, policies, 'list', { name: 'other', metadata: {} }).allowed).toBe(false);
  });
});

describe('mayActFor', () => {
  it('agents act only for themselves; others as their policies say', () => {
    const agent = principal(['tenant-admin'], 'agent');
    expect(mayActFor(agent, policies, { type: 'agent', name: 'someone' }).allowed).toBe(true);
    expect(mayActFor(agent, policies, { type: 'agent', name: 'other' }).allowed).toBe(false);
    const human = principal(['delegate']);
    expect(mayActFor(human, policies, { type: 'agent', name: 'claude-code' }).allowed).toBe(true);
    expect(mayActFor(human, policies, { type: 'agent', name: 'gpt' }).allowed).toBe(false);
    expect(mayActFor(human, policies, { type: 'human', name: 'claude-x' }).allowed).toBe(false);
    expect(mayActFor(principal(['app-admin']), policies, { type: 'agent', name: 'x' }).allowed).toBe(false);
  });
});
