/**
 * The web console in a real headless Chromium against a real `vault dev`: log in, leases
 * appear live as the SDK creates them, revocation (one and bulk, confirmed) shows within a
 * second and the SDK's next read fails with 410, a planted value never reaches the page or
 * its network traffic without an explicit reveal, CSP holds, axe finds nothing serious.
 * Screenshots of each view go to test-results/ui/.
 */
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LeaseRevokedError, Vault } from '../../src/sdk/index.js';
import { repoRoot, startVaultDev, type VaultDev } from '../support/vault-dev.js';
import { buildConsole, haveChromium, launchChromium } from './browser.js';

const artifacts = join(repoRoot, 'test-results/ui');
const canary = `canary-${Math.random().toString(36).slice(2)}-NEVER-IN-THE-DOM`;
const axeSource = (createRequire(import.meta.url)('axe-core') as { source: string }).source;

describe.skipIf(!haveChromium)('web console (Chromium)', () => {
  let dev: VaultDev;
  let vault: Vault;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  const cspViolations: string[] = [];
  const requestUrls: string[] = [];
  const bodies: Promise<string>[] = [];

  beforeAll(async () => {
    mkdirSync(artifacts, { recursive: true });
    buildConsole();
    dev = await startVaultDev();
    vault = await Vault.connect({ addr: dev.addr, token: dev.token, tenant: dev.tenant });
    await vault.credentials.create({ name: 'stripe-key', type: 'api-key', value: canary });
    await vault.credentials.create({ name: 'github-token', type: 'api-key', value: `${canary}-2` });
    browser = await launchChromium();
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    // Reported by the browser itself; any violation fails the suite (afterAll).
    await context.addInitScript({
      content:
        "document.addEventListener('securitypolicyviolation', (e) => console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI));",
    });
    page = await context.newPage();
    page.on('console', (message) => {
      if (/Content Security Policy|CSP violation/i.test(message.text())) cspViolations.push(message.text());
    });
    page.on('request', (request) => requestUrls.push(request.url()));
    page.on('response', (response) => {
      if (!(response.headers()['content-type'] ?? '').includes('event-stream')) {
        bodies.push(response.text().catch(() => ''));
      }
    });
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await dev?.stop();
  });

  const leaseRow = (id: string) => page.locator(`li[data-lease-id="${id}"]`);
  const screenshot = (name: string) =>
    page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });
  async function axeSerious(): Promise<string[]> {
    await page.evaluate(axeSource);
    // Expressions as strings: this file is type-checked for Node, without the DOM library.
    const violations = (await page.evaluate('axe.run().then((result) => result.violations)')) as {
      id: string;
      impact: string;
      nodes: { target: string[] }[];
    }[];
    return violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  }

  it('serves /ui with a strict CSP, no inline script or style, and no framing', async () => {
    const response = await fetch(`${dev.addr}/ui/`);
    expect(response.status).toBe(200);
    const csp = response.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("style-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).toContain("connect-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).not.toContain('unsafe-eval');
    expect(response.headers.get('x-frame-options')).toBe('DENY');
    const html = await response.text();
    const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)];
    expect(scripts.length).toBeGreaterThan(0);
    for (const [, attributes, body] of scripts) {
      expect(attributes).toMatch(/\bsrc="\/ui\/assets\//);
      expect(body!.trim()).toBe('');
    }
    expect(html).not.toMatch(/<style\b|\sstyle=|\son[a-z]+=/i);
    expect(html).not.toMatch(/https?:\/\//);
    const asset = /src="(\/ui\/assets\/[^"]+\.js)"/.exec(html)![1]!;
    const js = await fetch(`${dev.addr}${asset}`);
    expect(js.headers.get('content-type')).toMatch(/javascript/);
    expect(js.headers.get('content-security-policy')).toBe(csp);
    expect((await fetch(`${dev.addr}/ui/assets/missing.js`)).status).toBe(404);
  });

  it('logs in with the keyboard; the token stays out of URLs, cookies and localStorage', async () => {
    await page.goto(`${dev.addr}/ui/`);
    await page.keyboard.press('Tab');
    await expect.poll(() => page.evaluate('document.activeElement?.id')).toBe('token');
    await page.keyboard.type(dev.token);
    await page.keyboard.press('Enter');
    await page.getByTestId('whoami').getByText('human/dev-root').waitFor();
    await page.getByTestId('stream-state').getByText('Live').waitFor();
    expect(page.url()).not.toContain(dev.token);
    expect(await context.cookies()).toEqual([]);
    expect(await page.evaluate('localStorage.length')).toBe(0);
    expect(await page.evaluate('document.cookie')).toBe('');
    expect(await axeSerious()).toEqual([]);
  });

  it('shows leases as the SDK creates them, live, with a TTL bar', async () => {
    const lease = await vault.leases.create({
      credentialName: 'stripe-key',
      identity: { type: 'agent', name: 'claude-code' },
      ttl: '10m',
    });
    expect(lease.value).toBe(canary);
    const row = leaseRow(lease.id);
    await row.waitFor({ timeout: 2_000 });
    expect(await row.locator('progress').getAttribute('max')).toBe(String(10 * 60_000));
    await page.locator('section[data-group="agent/claude-code"]').waitFor();
    await screenshot('leases');
  });

  it('revokes one lease after confirmation; gone within a second, and the SDK read gets 410', async () => {
    const lease = await vault.leases.create({
      credentialName: 'github-token',
      identity: { type: 'agent', name: 'claude-code' },
      ttl: '10m',
    });
    const row = leaseRow(lease.id);
    await row.waitFor({ timeout: 2_000 });
    await row.getByRole('button', { name: `Revoke ${lease.id}` }).click();
    const dialog = page.getByRole('dialog');
    await dialog.waitFor();
    // Escape cancels: nothing revoked.
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });
    expect((await vault.leases.get(lease.id)).state).toBe('active');
    await row.getByRole('button', { name: `Revoke ${lease.id}` }).click();
    await screenshot('revoke-confirm');
    await dialog.getByRole('button', { name: 'Revoke 1 lease' }).click();
    await row.waitFor({ state: 'detached', timeout: 1_000 });
    await expect(vault.leases.read(lease.id)).rejects.toBeInstanceOf(LeaseRevokedError);
  });

  it("revokes all of an identity's leases with the count confirmed", async () => {
    const created = await Promise.all(
      [1, 2, 3].map(() =>
        vault.leases.create({
          credentialName: 'stripe-key',
          identity: { type: 'agent', name: 'bulk-bot' },
          ttl: '5m',
        }),
      ),
    );
    const group = page.locator('section[data-group="agent/bulk-bot"]');
    await expect.poll(() => group.locator('li.lease').count(), { timeout: 2_000 }).toBe(3);
    await group.getByRole('button', { name: 'Revoke all of agent/bulk-bot' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByText('Revoke all 3 active leases held by agent/bulk-bot?').waitFor();
    await dialog.getByRole('button', { name: 'Revoke 3 leases' }).click();
    await group.waitFor({ state: 'detached', timeout: 1_000 });
    await page.getByTestId('action-status').getByText('Revoked 3 leases held by agent/bulk-bot.').waitFor();
    for (const lease of created) {
      await expect(vault.leases.read(lease.id)).rejects.toBeInstanceOf(LeaseRevokedError);
    }
    // Other identities' leases are untouched.
    expect(await page.locator('section[data-group="agent/claude-code"] li.lease').count()).toBe(1);
  });

  it('never puts a value in the DOM or a network response without reveal; reveal is explicit and audited', async () => {
    await page.locator('a[href="#/credentials"]').click();
    await page.getByRole('row', { name: /stripe-key/ }).waitFor();
    await page.getByRole('button', { name: 'Details of stripe-key' }).click();
    await screenshot('credentials');
    expect(await axeSerious()).toEqual([]);
    await page.locator('a[href="#/leases"]').click();
    await page.locator('section[data-group="agent/claude-code"] li.lease').first().waitFor();
    const seen = [
      await page.content(),
      (await page.evaluate('document.documentElement.outerHTML')) as string,
      ...(await Promise.all(bodies)),
    ];
    for (const text of seen) expect(text).not.toContain(canary);

    const id = (await page
      .locator('section[data-group="agent/claude-code"] li.lease')
      .first()
      .getAttribute('data-lease-id'))!;
    await leaseRow(id)
      .getByRole('button', { name: `Reveal value of ${id}` })
      .click();
    await page.getByRole('dialog').getByRole('button', { name: 'Reveal and audit' }).click();
    await expect.poll(() => page.getByTestId('revealed-value').textContent()).toBe(canary);
    await page.getByRole('button', { name: 'Hide' }).click();
    expect(await page.content()).not.toContain(canary);
    const audit = await vault.audit.query({ action: 'lease.reveal' });
    expect(audit.some((record) => record.resource.includes(id) && record.actor.name === 'dev-root')).toBe(
      true,
    );
  });

  it('filters the audit timeline and shows the chain verified', async () => {
    await page.locator('a[href="#/audit"]').click();
    await page
      .getByTestId('chain-status')
      .getByText(/Chain intact/)
      .waitFor();
    await page.getByLabel('Action').fill('lease.revoke');
    await page.getByRole('button', { name: 'Apply filter' }).click();
    const records = page.getByTestId('audit-records').locator('li');
    await expect.poll(() => records.count()).toBeGreaterThan(0);
    const actions = await page.getByTestId('audit-records').locator('li code').allTextContents();
    expect(new Set(actions)).toEqual(new Set(['lease.revoke']));
    await screenshot('audit');
    expect(await axeSerious()).toEqual([]);
  });

  it('reads identities and policies; the Kubernetes view renders', async () => {
    await page.locator('a[href="#/access"]').click();
    await page.getByRole('heading', { name: 'Policies', exact: true }).waitFor();
    await screenshot('access');
    expect(await axeSerious()).toEqual([]);
    await page.locator('a[href="#/kubernetes"]').click();
    await page.getByRole('heading', { name: 'Kubernetes' }).waitFor();
    await screenshot('kubernetes');
  });

  it('stays usable at 200% zoom and in dark mode (no horizontal scrolling, axe clean)', async () => {
    await page.setViewportSize({ width: 640, height: 450 });
    await page.emulateMedia({ colorScheme: 'dark' });
    for (const view of ['leases', 'credentials', 'audit', 'access']) {
      await page.locator(`a[href="#/${view}"]`).click();
      await page.waitForTimeout(300);
      // Elements reaching past the right edge (inside a scrollable region is fine).
      const overflowing = (await page.evaluate(`[...document.querySelectorAll('body *')]
        .filter((e) => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1 && !e.parentElement?.closest('.table-wrap'))
        .map((e) => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))`)) as string[];
      expect(overflowing, `${view} scrolls sideways at 200%`).toEqual([]);
      expect(await axeSerious(), view).toEqual([]);
    }
    await screenshot('leases-dark-200');
  });

  it('made no CSP violations, no third-party requests, and never put the token in a URL', () => {
    expect(cspViolations).toEqual([]);
    const origin = new URL(dev.addr).origin;
    for (const url of requestUrls) {
      expect(url.startsWith(`${origin}/`) || url.startsWith('data:')).toBe(true);
      expect(url).not.toContain(dev.token);
    }
  });
});
