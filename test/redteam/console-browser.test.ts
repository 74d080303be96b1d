/**
 * Red team: the web console in Debian's Chromium against the real API, attacked through the
 * data it shows and the tokens it holds. Markup payloads go in through the public API
 * wherever free text is accepted (credential metadata, lease labels, policy descriptions,
 * rules and actFor, token display names, audit reasons and paths); a low-privilege user, an
 * agent and another origin try what they should not manage; and the browser's own cache,
 * cookies, storage and requests are searched for the token and for values.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestVault, type TestVault } from '../support/test-vault.js';
import { buildConsole, haveChromium, launchChromium } from '../ui/browser.js';

const payload =
  '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script><svg onload="window.__xss=3"></svg>' +
  '"\'><iframe src="javascript:window.__xss=4"></iframe>';
/** What every view must show, as text, wherever the payload went in. */
const payloadText = '<script>window.__xss=2</script>';
const payloadStart = '<img src=x onerror="window.__xss=1">';
const value = `sk_live_${Math.random().toString(36).slice(2)}_NEVER_IN_THE_PAGE`;
const agent = { type: 'agent' as const, name: 'claude-code' };
const pod = (name: string, namespace: string) => ({
  'vault.ghoststack.io/pod': name,
  'vault.ghoststack.io/namespace': namespace,
});

describe.skipIf(!haveChromium)('red team: the web console in Chromium', () => {
  let uiDir: string;
  let vault: TestVault;
  let browser: Browser;
  let agentToken: string;
  let viewerToken: string;
  let agentAccessor: string;
  const cspViolations: string[] = [];
  const requests: { url: string; referer?: string | undefined }[] = [];
  const contexts: BrowserContext[] = [];

  /** The API as a script would call it; fails loudly on anything but the expected status. */
  async function api(method: string, path: string, body?: unknown, token?: string, status = [200, 201]) {
    const answer = await vault.call(method, `/v1${path}`, {
      ...(body !== undefined ? { body } : {}),
      ...(token ? { token } : {}),
    });
    if (!status.includes(answer.status))
      throw new Error(`${method} ${path}: ${answer.status} ${answer.text}`);
    return answer.body;
  }

  async function newPage(): Promise<Page> {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    contexts.push(context);
    await context.addInitScript({
      content:
        "document.addEventListener('securitypolicyviolation', (e) => console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI));",
    });
    const page = await context.newPage();
    page.on('console', (message) => {
      if (/Content Security Policy|CSP violation/i.test(message.text())) cspViolations.push(message.text());
    });
    page.on('request', (request) =>
      requests.push({ url: request.url(), referer: request.headers().referer }),
    );
    return page;
  }

  async function signIn(page: Page, token: string, tenant?: string) {
    await page.goto(`${vault.url}/ui/`);
    await page.locator('#token').fill(token);
    if (tenant) await page.locator('#tenant').fill(tenant);
    await page.keyboard.press('Enter');
    await page.getByTestId('whoami').getByText('/').waitFor();
  }

  async function view(page: Page, name: string) {
    await page.locator(`a[href="#/${name}"]`).click();
    await page.locator('main h1').first().waitFor();
  }

  /** Anything the payload could have become if it were parsed as markup instead of shown. */
  const injected = (page: Page) =>
    page.evaluate(`({
      flag: window.__xss,
      elements: document.querySelectorAll('img, iframe, svg, script:not([src]), [onerror], [onload]').length,
    })`) as Promise<{ flag: unknown; elements: number }>;

  beforeAll(async () => {
    uiDir = mkdtempSync(join(tmpdir(), 'vault-redteam-console-'));
    buildConsole(uiDir);
    vault = await startTestVault({ uiDir });

    await api('PUT', '/policies/agent-use', { rules: [{ actions: ['list', 'read-metadata', 'lease'] }] });
    await api('PUT', '/policies/viewer', { rules: [{ actions: ['list', 'read-metadata', 'lease'] }] });
    await api('PUT', '/policies/planted', {
      description: payload,
      rules: [{ credentials: [payload.slice(0, 200)], actions: ['list'] }],
      actFor: [{ type: 'agent', name: payload.slice(0, 200) }],
    });
    await api('POST', '/credentials', {
      name: 'stripe-key',
      type: 'api-key',
      value,
      metadata: { owner: payload, hosts: 'api.stripe.com' },
    });
    await api('PUT', '/identities/agent/claude-code', {
      policies: ['agent-use'],
      metadata: { note: payload },
    });
    const minted = await api('POST', '/auth/tokens', {
      identity: agent,
      policies: ['agent-use'],
      displayName: '<img src=x onerror="window.__xss=5">',
    });
    agentToken = minted.token;
    agentAccessor = minted.accessor;
    viewerToken = (
      await api('POST', '/auth/tokens', { identity: { type: 'human', name: 'alice' }, policies: ['viewer'] })
    ).token;
    const held = await api(
      'POST',
      '/leases',
      { credentialName: 'stripe-key', ttl: '30m', labels: { purpose: payload } },
      agentToken,
    );
    await api(
      'POST',
      `/leases/${held.id}/use`,
      { outcome: 'denied', method: 'GET', path: `/${payload}`, reason: payload },
      agentToken,
    );

    browser = await launchChromium();
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await vault?.close();
    rmSync(uiDir, { recursive: true, force: true });
  });

  it('shows planted markup as text in every view; nothing of it runs or becomes an element', async () => {
    const page = await newPage();
    await signIn(page, vault.rootToken);
    await page.getByText(`purpose=${payloadStart}`, { exact: false }).first().waitFor();
    await view(page, 'credentials');
    await page
      .getByRole('button', { name: /Details/ })
      .first()
      .click();
    await page.getByText(payloadText, { exact: false }).first().waitFor();
    await view(page, 'audit');
    await page.getByText(`(${payload}`, { exact: false }).first().waitFor();
    await view(page, 'access');
    await page.getByText(payloadText, { exact: false }).first().waitFor();
    await page.getByRole('button', { name: 'Edit policy planted' }).click();
    expect(await page.locator('textarea').inputValue()).toContain('"actFor"');
    await page.getByLabel('Token accessor').fill(agentAccessor);
    await page.getByRole('button', { name: 'Look up' }).click();
    await page.getByText('(<img src=x onerror="window.__xss=5">)', { exact: false }).waitFor();
    expect(await injected(page)).toEqual({ elements: 0 });
    expect(cspViolations).toEqual([]);
  });

  it('leaves no value in the browser cache when a page calls the API with a token', async () => {
    // A browser script calling the API (not the console, which asks for no-store itself):
    // without Cache-Control: no-store on the answer, Chromium keeps it and hands it back.
    const lease = await api('POST', '/leases', { credentialName: 'stripe-key', ttl: '5m' });
    const page = await newPage();
    await page.goto(`${vault.url}/ui/`);
    const cached = (await page.evaluate(`(async () => {
      const url = '/v1/leases/${lease.id}/value';
      const headers = { authorization: 'Bearer ${vault.rootToken}' };
      const first = await fetch(url, { headers });
      if (!(await first.text()).includes('${value}')) return 'the read itself failed';
      try {
        const again = await fetch(url, { headers, cache: 'only-if-cached', mode: 'same-origin' });
        return 'from the cache: ' + (await again.text());
      } catch {
        return 'not cached';
      }
    })()`)) as string;
    expect(cached).toBe('not cached');
  });

  it("gives a low-privilege user only their own leases, live, and no way to act on others'", async () => {
    const page = await newPage();
    await signIn(page, viewerToken);
    await page.getByTestId('stream-state').getByText('Live').waitFor();
    const own = await api('POST', '/leases', { credentialName: 'stripe-key', ttl: '5m' }, viewerToken);
    const others = await api('POST', '/leases', { credentialName: 'stripe-key', ttl: '5m' }, agentToken);
    await page.locator(`li[data-lease-id="${own.id}"]`).waitFor({ timeout: 2_000 });
    // The agent's lease was issued after alice's: had the stream carried it, it would show now.
    expect(await page.locator(`li[data-lease-id="${others.id}"]`).count()).toBe(0);
    expect(await page.getByText('claude-code').count()).toBe(0);
    // The same calls the console makes, from the console's page, with alice's token: refused.
    const refused = (await page.evaluate(`(async () => {
      const headers = { authorization: 'Bearer ${viewerToken}', 'content-type': 'application/json' };
      const post = (path, body) => fetch('/v1' + path, { method: body ? 'POST' : 'POST', headers, body: body && JSON.stringify(body) }).then((r) => r.status);
      const put = (path, body) => fetch('/v1' + path, { method: 'PUT', headers, body: JSON.stringify(body) }).then((r) => r.status);
      return {
        revoke: await post('/leases/${others.id}/revoke'),
        reveal: await post('/leases/${others.id}/reveal'),
        revokeAgent: await post('/leases/revoke', { identity: { type: 'agent', name: 'claude-code' } }),
        revokeCredential: await post('/leases/revoke', { credentialName: 'stripe-key' }),
        editPolicy: await put('/policies/viewer', { rules: [{ actions: ['admin'] }] }),
        grantSelf: await put('/identities/human/alice', { policies: ['agent-use', 'viewer'] }),
        revealOwn: await post('/leases/${own.id}/reveal'),
      };
    })()`)) as Record<string, number>;
    expect(refused).toEqual({
      revoke: 403,
      reveal: 403,
      revokeAgent: 403,
      revokeCredential: 403,
      editPolicy: 403,
      grantSelf: 403,
      revealOwn: 403,
    });
    // Reveal through the console: the refusal is shown, the value is not.
    await page.locator(`li[data-lease-id="${own.id}"]`).getByRole('button', { name: 'Reveal' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Reveal and audit' }).click();
    await page
      .getByTestId('action-status')
      .getByText(/grants "reveal"/)
      .waitFor();
    expect(await page.content()).not.toContain(value);
    expect((await api('GET', `/leases/${others.id}`)).state).toBe('active');
  });

  it('stops showing others’ leases the moment an open console’s grant or token goes', async () => {
    // bob is an admin while his console opens its live stream; then the policy is narrowed.
    await api('PUT', '/policies/ops', { rules: [{ actions: ['admin', 'list', 'read-metadata'] }] });
    const bob = await api('POST', '/auth/tokens', {
      identity: { type: 'human', name: 'bob' },
      policies: ['ops'],
    });
    const page = await newPage();
    await signIn(page, bob.token);
    await page.getByTestId('stream-state').getByText('Live').waitFor();
    const before = await api('POST', '/leases', { credentialName: 'stripe-key', ttl: '5m' }, agentToken);
    await page.locator(`li[data-lease-id="${before.id}"]`).waitFor({ timeout: 2_000 });

    await api('PUT', '/policies/ops', { rules: [{ actions: ['list', 'read-metadata'] }] });
    const afterDemotion = await api(
      'POST',
      '/leases',
      { credentialName: 'stripe-key', ttl: '5m' },
      agentToken,
    );
    // The same lease reaches a console that may see it: the stream is not merely slow.
    const witness = await newPage();
    await signIn(witness, vault.rootToken);
    await witness.locator(`li[data-lease-id="${afterDemotion.id}"]`).waitFor({ timeout: 2_000 });
    await page.waitForTimeout(1_000);
    expect(await page.locator(`li[data-lease-id="${afterDemotion.id}"]`).count()).toBe(0);
    // What a new request of bob's gets, for comparison: nothing of the agent's.
    expect((await api('GET', '/leases?state=active', undefined, bob.token)).leases).toEqual([]);

    // Restored, then the token revoked: the stream ends before the next heartbeat.
    await api('PUT', '/policies/ops', { rules: [{ actions: ['admin', 'list', 'read-metadata'] }] });
    await api('DELETE', `/auth/tokens/${bob.accessor}`);
    const afterRevocation = await api(
      'POST',
      '/leases',
      { credentialName: 'stripe-key', ttl: '5m' },
      agentToken,
    );
    await witness.locator(`li[data-lease-id="${afterRevocation.id}"]`).waitFor({ timeout: 2_000 });
    await page.waitForTimeout(1_000);
    expect(await page.locator(`li[data-lease-id="${afterRevocation.id}"]`).count()).toBe(0);
    await page
      .getByTestId('stream-state')
      .getByText(/Stopped/)
      .waitFor({ timeout: 5_000 });
  });

  it('places leases in Kubernetes by their identity, never by labels their holder wrote', async () => {
    // An agent (not a workload) labels its lease as a payments pod; a ServiceAccount of the
    // sandbox namespace labels its lease as payments. Neither may be shown as payments'.
    const real = await api('POST', '/leases', {
      credentialName: 'stripe-key',
      identity: { type: 'workload', name: 'system:serviceaccount:payments:api' },
      ttl: '5m',
      labels: pod('api-7d9f', 'payments'),
    });
    const posing = await api(
      'POST',
      '/leases',
      { credentialName: 'stripe-key', ttl: '5m', labels: pod('api-7d9f', 'payments') },
      agentToken,
    );
    const moved = await api('POST', '/leases', {
      credentialName: 'stripe-key',
      identity: { type: 'workload', name: 'system:serviceaccount:sandbox:builder' },
      ttl: '5m',
      labels: pod('api-7d9f', 'payments'),
    });
    const page = await newPage();
    await signIn(page, vault.rootToken);
    await view(page, 'kubernetes');
    const payments = page.locator('section[data-namespace="payments"]');
    const line = (id: string) => page.locator('[data-holder] li', { hasText: id });
    await payments.getByText(real.id).waitFor({ timeout: 2_000 });
    expect(await line(real.id).textContent()).toContain('held by system:serviceaccount:payments:api');
    await page.locator('section[data-namespace="sandbox"]').getByText(moved.id).waitFor();
    expect(await line(moved.id).textContent()).toContain('held by system:serviceaccount:sandbox:builder');
    expect(await payments.getByText(moved.id).count()).toBe(0);
    expect(await page.getByText(posing.id).count()).toBe(0);
  });

  it('names the tenant the console addresses, not only the token’s own', async () => {
    await api('POST', '/sys/tenants', { id: 'other' });
    const page = await newPage();
    await signIn(page, vault.rootToken, 'other');
    await page
      .getByTestId('whoami')
      .getByText('tenant other (token of tenant acme)')
      .waitFor({ timeout: 5_000 });
  });

  it('signs in with the export line `vault dev` prints, pasted whole', async () => {
    const page = await newPage();
    await page.goto(`${vault.url}/ui/`);
    await page.locator('#token').fill(`export VAULT_TOKEN=${viewerToken}`);
    await page.keyboard.press('Enter');
    await page.getByTestId('whoami').getByText('human/alice').waitFor({ timeout: 5_000 });
  });

  it('cannot be framed by another origin', async () => {
    const framing: Server = createServer((_req, res) => {
      res.setHeader('content-type', 'text/html');
      res.end(`<!doctype html><iframe src="${vault.url}/ui/"></iframe>`);
    });
    await new Promise<void>((resolve) => framing.listen(0, '127.0.0.1', resolve));
    // Its own context, outside the request log: the framing page is another origin's.
    const context = await browser.newContext();
    const page = await context.newPage();
    const blocked: string[] = [];
    page.on('console', (message) => {
      if (/frame-ancestors/.test(message.text())) blocked.push(message.text());
    });
    // localhost, not 127.0.0.1: another origin than the console's.
    await page.goto(`http://localhost:${(framing.address() as AddressInfo).port}/`);
    await expect.poll(() => blocked.length).toBeGreaterThan(0);
    const child = page.frames().find((frame) => frame !== page.mainFrame());
    expect(child?.url()).not.toContain('/ui/');
    await context.close();
    framing.close();
  });

  it('put the token in no URL, Referer, cookie or localStorage, and asked no other origin', async () => {
    const consoleRequests = requests.filter((r) => r.url.startsWith(vault.url));
    expect(consoleRequests.length).toBeGreaterThan(20);
    for (const { url, referer } of requests) {
      for (const token of [vault.rootToken, agentToken, viewerToken]) {
        expect(url).not.toContain(token);
        expect(referer ?? '').not.toContain(token);
      }
      expect(url.startsWith(`${vault.url}/`)).toBe(true);
      // Referrer-Policy: no-referrer on the console.
      expect(referer ?? '').toBe('');
    }
    for (const context of contexts) {
      expect(await context.cookies()).toEqual([]);
      for (const page of context.pages()) {
        if (!page.url().startsWith(vault.url)) continue;
        expect(await page.evaluate('JSON.stringify(localStorage)')).toBe('{}');
      }
    }
    expect(cspViolations).toEqual([]);
  });
});
