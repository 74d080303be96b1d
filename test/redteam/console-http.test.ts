/**
 * Red team: the web console's server side, attacked over raw HTTP. The real API app serves a
 * console directory that has a secret file beside it and a dotfile inside; every request goes
 * byte for byte as written (raw sockets: no client normalizes "..", "%2e" or the request target).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uiContentSecurityPolicy } from '../../src/server/ui.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';

const secret = `outside-the-console-${Math.random().toString(36).slice(2)}`;
const value = `sk_live_${Math.random().toString(36).slice(2)}`;

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** One request exactly as given (request target included), on its own connection. */
function raw(url: string, target: string, headers: Record<string, string> = {}): Promise<RawResponse> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => {
      const lines = [`GET ${target} HTTP/1.1`, `Host: ${hostname}:${port}`, 'Connection: close'];
      for (const [name, text] of Object.entries(headers)) lines.push(`${name}: ${text}`);
      socket.write(`${lines.join('\r\n')}\r\n\r\n`);
    });
    let text = '';
    socket.setEncoding('utf8').on('data', (chunk: string) => {
      text += chunk;
    });
    socket.on('error', reject);
    socket.on('end', () => {
      const [head = '', ...rest] = text.split('\r\n\r\n');
      const [statusLine = '', ...headerLines] = head.split('\r\n');
      const parsed: Record<string, string> = {};
      for (const line of headerLines) {
        const colon = line.indexOf(':');
        parsed[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
      }
      resolve({ status: Number(statusLine.split(' ')[1]), headers: parsed, body: rest.join('\r\n\r\n') });
    });
  });
}

describe('red team: the console over raw HTTP', () => {
  let vault: TestVault;
  let root: string;

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'vault-redteam-ui-'));
    const ui = join(root, 'ui');
    mkdirSync(join(ui, 'assets'), { recursive: true });
    writeFileSync(join(ui, 'index.html'), '<!doctype html><title>console</title>');
    writeFileSync(join(ui, 'assets', 'app-1234.js'), 'export {};\n');
    writeFileSync(join(ui, '.env'), `TOKEN=${secret}\n`);
    writeFileSync(join(ui, 'assets', '.secret'), `${secret}\n`);
    writeFileSync(join(root, 'secret.txt'), `${secret}\n`);
    writeFileSync(join(root, 'package.json'), `{"secret":"${secret}"}\n`);
    vault = await startTestVault({ uiDir: ui });
  });

  afterAll(async () => {
    await vault?.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('serves nothing from outside the console directory, nor its dotfiles', async () => {
    const targets = [
      '/ui/../secret.txt',
      '/ui/%2e%2e/secret.txt',
      '/ui/%2E%2E%2Fsecret.txt',
      '/ui/..%2fsecret.txt',
      '/ui/..%5csecret.txt',
      '/ui/assets/../../secret.txt',
      '/ui/assets/..%2f..%2fsecret.txt',
      '/ui/assets/%2e%2e/%2e%2e/package.json',
      '/ui/assets/....//....//secret.txt',
      '/ui/%c0%ae%c0%ae/secret.txt',
      '/ui/assets/%00../../secret.txt',
      '/ui//../secret.txt',
      '/ui/.env',
      '/ui/assets/.secret',
      '/ui/assets/%2esecret',
    ];
    for (const target of targets) {
      const response = await raw(vault.url, target);
      expect(response.body, target).not.toContain(secret);
      expect([200, 400, 404], target).toContain(response.status);
    }
  });

  it('sends the CSP and the frame denial on every /ui answer: pages, assets, 404s, errors', async () => {
    const targets = [
      '/ui',
      '/ui/',
      '/ui/index.html',
      '/ui/leases',
      '/ui/assets',
      '/ui/assets/',
      '/ui/assets/app-1234.js',
      '/ui/assets/missing.js',
      '/ui/%E0%A4%A',
      '/ui/assets/%',
    ];
    for (const target of targets) {
      const response = await raw(vault.url, target);
      expect(response.headers['content-security-policy'], target).toBe(uiContentSecurityPolicy);
      expect(response.headers['x-frame-options'], target).toBe('DENY');
      expect(response.headers['x-content-type-options'], target).toBe('nosniff');
      expect(response.headers['referrer-policy'], target).toBe('no-referrer');
    }
  });

  it('never redirects to another host, whatever the request target names', async () => {
    // RFC 9112 §3.2.2: a server must accept the absolute form. serve-static built its directory
    // redirects from it, so `GET http://elsewhere/ui` answered `Location: http://elsewhere/ui/`.
    const targets = [
      'http://evil.example/ui',
      'http://evil.example/ui/assets',
      'https://evil.example:443/ui?next=1',
      '//evil.example/ui',
      '/ui//evil.example/',
      '/ui/%2f%2fevil.example',
      '/ui/assets//evil.example',
    ];
    for (const target of targets) {
      const response = await raw(vault.url, target);
      expect(response.headers.location ?? '', target).not.toMatch(/evil\.example/);
      expect(response.status, target).not.toBe(301);
      expect(response.status, target).not.toBe(302);
    }
  });

  it('lets no cache keep the page under any of its names; hashed assets are immutable', async () => {
    for (const target of ['/ui', '/ui/', '/ui/index.html', '/ui/audit']) {
      const response = await raw(vault.url, target);
      expect(response.status, target).toBe(200);
      expect(response.body, target).toContain('<title>console</title>');
      expect(response.headers['cache-control'], target).toBe('no-store');
    }
    const asset = await raw(vault.url, '/ui/assets/app-1234.js');
    expect(asset.headers['cache-control']).toBe('public, max-age=31536000, immutable');
  });

  it('answers a malformed percent-encoding with a 400 that says what to fix, not a 500', async () => {
    const targets = [
      '/ui/%E0%A4%A',
      '/ui/%',
      '/v1/leases/%E0%A4%A',
      '/v1/credentials/%zz',
      '/.well-known/vault/audit-keys/%',
    ];
    for (const target of targets) {
      const response = await raw(vault.url, target, { Authorization: `Bearer ${vault.rootToken}` });
      expect(response.status, target).toBe(400);
      const body = JSON.parse(response.body) as { error: { code: string; message: string } };
      expect(body.error.code, target).toBe('bad_request');
      expect(body.error.message, target).toMatch(/percent-encoding/);
    }
    // Refused input is not a server fault: nothing logged at error level (pino level 50).
    expect(vault.output()).not.toMatch(/"level":50/);
  });

  it('marks every API answer no-store: none that carries a value or a token may be cached', async () => {
    const created = await vault.call('POST', '/v1/credentials', {
      body: { name: 'stripe-key', type: 'api-key', value },
    });
    expect(created.status).toBe(201);
    const headers = { authorization: `Bearer ${vault.rootToken}`, 'content-type': 'application/json' };
    const lease = await fetch(`${vault.url}/v1/leases`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ credentialName: 'stripe-key', ttl: '5m' }),
    });
    const { id } = (await lease.json()) as { id: string };
    const answers: [string, Response][] = [
      ['create lease', lease],
      ['read value', await fetch(`${vault.url}/v1/leases/${id}/value`, { headers })],
      ['reveal', await fetch(`${vault.url}/v1/leases/${id}/reveal`, { method: 'POST', headers })],
      [
        'mint token',
        await fetch(`${vault.url}/v1/auth/tokens`, {
          method: 'POST',
          headers,
          body: JSON.stringify({ identity: { type: 'agent', name: 'claude-code' } }),
        }),
      ],
      ['list leases', await fetch(`${vault.url}/v1/leases`, { headers })],
      ['refused', await fetch(`${vault.url}/v1/leases`)],
    ];
    for (const [what, response] of answers) {
      expect(response.status, what).toBeLessThan(500);
      expect(response.headers.get('cache-control'), what).toBe('no-store');
      // Nothing to revalidate either: no answer carries an ETag (a hash of every body).
      expect(response.headers.get('etag'), what).toBeNull();
    }
    expect(await answers[1]![1].text()).toContain(value);
  });

  it('keeps the token and the value out of the server log, whatever was asked', () => {
    // Every request above, including refused and malformed ones, logged at debug level.
    const output = vault.output();
    expect(output).toContain('"request"');
    expect(output).not.toContain(vault.rootToken);
    expect(output).not.toContain(value);
    expect(output).not.toContain(secret);
  });
});
