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
import { gzipSync } from 'node:zlib';
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
  const view = async (name: string) => {
    await page.locator(`a[href="#/${name}"]`).click();
    await page.locator('main h1').first().waitFor();
  };
  /** Applies the audit filter and waits for its answer (the old list stays until then). */
  async function applyAuditFilter() {
    await page.getByRole('button', { name: 'Apply filter' }).click();
    await page.locator('[data-testid="audit-records"][aria-busy="false"]').waitFor();
  }
  const activeShown = () => page.getByTestId('lease-summary').getAttribute('data-active').then(Number);
  async function signIn(token: string) {
    await page.locator('#token').fill(token);
    await page.keyboard.press('Enter');
    await page.getByTestId('whoami').waitFor();
  }
  async function signOut() {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.locator('#token').waitFor();
  }
  /** Elements reaching past the right edge (inside a scrollable region is fine). */
  const overflowing = () =>
    page.evaluate(`[...document.querySelectorAll('body *')]
        .filter((e) => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1 && !e.parentElement?.closest('.table-wrap'))
        .map((e) => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))`) as Promise<
      string[]
    >;
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

  it('groups by credential, filters by identity type and text, and revokes all of a credential with the count confirmed', async () => {
    const forBot = await Promise.all(
      [1, 2].map(() =>
        vault.leases.create({
          credentialName: 'github-token',
          identity: { type: 'agent', name: 'filter-bot' },
          ttl: '5m',
        }),
      ),
    );
    const forAnn = await vault.leases.create({
      credentialName: 'github-token',
      identity: { type: 'human', name: 'ann' },
      ttl: '5m',
    });
    await leaseRow(forAnn.id).waitFor({ timeout: 2_000 });
    await page.getByLabel('Group by').selectOption('credential');
    const group = page.locator('section[data-group="github-token"]');
    await expect.poll(() => group.locator('li.lease').count()).toBe(3);
    // Grouped by credential, a row names its holder.
    await expect
      .poll(() => leaseRow(forAnn.id).locator('.lease-main strong').textContent())
      .toBe('human/ann');

    await page.getByLabel('Identity type').selectOption('human');
    await expect.poll(() => page.locator('li.lease').count()).toBe(1);
    expect(await page.locator('li.lease').getAttribute('data-lease-id')).toBe(forAnn.id);
    await page.getByTestId('lease-summary').getByText('1 shown').waitFor();
    await page.getByLabel('Identity type').selectOption('');
    await page.getByLabel('Search').fill('FILTER-BOT');
    await expect
      .poll(async () =>
        (
          await page
            .locator('li.lease')
            .evaluateAll((rows) => rows.map((r) => r.getAttribute('data-lease-id')))
        ).sort(),
      )
      .toEqual(forBot.map((l) => l.id).sort());
    await screenshot('leases-by-credential-filtered');
    await page.getByLabel('Search').fill('');

    // The count covers every lease of the credential, not only those the filter shows.
    await group.getByRole('button', { name: 'Revoke all of github-token' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByText('Revoke all 3 active leases of credential github-token?').waitFor();
    await dialog.getByRole('button', { name: 'Revoke 3 leases' }).click();
    await group.waitFor({ state: 'detached', timeout: 1_000 });
    await page
      .getByTestId('action-status')
      .getByText('Revoked 3 leases of credential github-token.')
      .waitFor();
    for (const lease of [...forBot, forAnn]) {
      await expect(vault.leases.read(lease.id)).rejects.toBeInstanceOf(LeaseRevokedError);
    }
    await page.getByLabel('Group by').selectOption('identity');
    await page.locator('section[data-group="agent/claude-code"] li.lease').waitFor();
  });

  it('renders only the rows near the viewport of a long list, and the keyboard still walks all of it', async () => {
    await vault.credentials.create({ name: 'bulk-cred', type: 'api-key', value: `${canary}-bulk` });
    const count = 300;
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < count) {
          const i = next++;
          await vault.leases.create({
            credentialName: 'bulk-cred',
            identity: { type: 'agent', name: `many-${i % 6}` },
            ttl: '10m',
          });
        }
      }),
    );
    await expect.poll(activeShown, { timeout: 10_000 }).toBe(count + 1);
    // 301 leases and 7 group headings, but only a screenful (and a few more) in the DOM.
    const mounted = await page.locator('[data-index]').count();
    expect(mounted).toBeGreaterThan(5);
    expect(mounted).toBeLessThan(60);
    const lastMounted = Math.max(
      ...(await page
        .locator('[data-index]')
        .evaluateAll((lines) => lines.map((l) => Number(l.getAttribute('data-index'))))),
    );
    expect(await axeSerious()).toEqual([]);
    await screenshot('leases-long-list');

    // Tab from the first row onwards: focus always lands on the next line's buttons, on screen,
    // also past the lines that were mounted at the start.
    await page
      .locator('li.lease')
      .first()
      .getByRole('button', { name: /^Reveal/ })
      .focus();
    const focusedLine = () =>
      page.evaluate(`(() => {
        const e = document.activeElement;
        const line = e?.closest('[data-index]');
        const box = e?.getBoundingClientRect();
        return { index: line ? Number(line.getAttribute('data-index')) : -1, tag: e?.tagName, visible: !!box && box.top >= -1 && box.bottom <= innerHeight + 1, where: [box?.top, box?.bottom, scrollY, innerHeight].map(Math.round).join(' ') };
      })()`) as Promise<{ index: number; tag: string; visible: boolean; where: string }>;
    let previous = (await focusedLine()).index;
    for (let i = 0; i < 2 * lastMounted + 10; i += 1) {
      await page.keyboard.press('Tab');
      const now = await focusedLine();
      expect(now.tag, `Tab ${i + 1}`).toBe('BUTTON');
      expect(now.visible, `Tab ${i + 1}: top, bottom, scrollY, height ${now.where}`).toBe(true);
      expect(now.index - previous, `Tab ${i + 1}`).toBeGreaterThanOrEqual(0);
      expect(now.index - previous, `Tab ${i + 1}`).toBeLessThanOrEqual(1);
      previous = now.index;
    }
    expect(previous).toBeGreaterThan(lastMounted);
    for (let i = 0; i < 10; i += 1) {
      await page.keyboard.press('Shift+Tab');
      const now = await focusedLine();
      expect(previous - now.index, `Shift+Tab ${i + 1}`).toBeGreaterThanOrEqual(0);
      expect(now.visible).toBe(true);
      previous = now.index;
    }
    // Enter on a focused button opens its dialog with focus inside; Escape closes it.
    await page.keyboard.press('Enter');
    await page.getByRole('dialog').waitFor();
    expect(await page.evaluate(`!!document.activeElement?.closest('dialog')`)).toBe(true);
    await page.keyboard.press('Escape');
    await page.getByRole('dialog').waitFor({ state: 'hidden' });

    // The end of the list is reachable by scrolling; the last line is then mounted.
    await page.evaluate('window.scrollTo(0, document.documentElement.scrollHeight)');
    await page.locator(`[data-index="${count + 1 + 7 - 1}"]`).waitFor();
    // At 200% zoom the rows reflow and are measured again: nothing overlaps or scrolls sideways.
    await page.setViewportSize({ width: 640, height: 450 });
    await page.evaluate('window.scrollTo(0, 0)');
    await page.waitForTimeout(300);
    expect(await overflowing()).toEqual([]);
    const overlaps = (await page.evaluate(`(() => {
      const boxes = [...document.querySelectorAll('[data-index]')].map((e) => e.getBoundingClientRect()).sort((a, b) => a.top - b.top);
      return boxes.filter((b, i) => i > 0 && b.top < boxes[i - 1].bottom - 1).length;
    })()`)) as number;
    expect(overlaps).toBe(0);
    expect(await axeSerious()).toEqual([]);
    await page.setViewportSize({ width: 1280, height: 900 });

    // Revoke them all from the Credentials view, which counts them.
    await view('credentials');
    const row = page.getByRole('row', { name: /bulk-cred/ });
    await expect.poll(() => row.locator('td').nth(3).textContent()).toBe(String(count));
    await row.getByRole('button', { name: 'Revoke leases of bulk-cred' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByText(`Revoke all ${count} active leases of bulk-cred?`).waitFor();
    await dialog.getByRole('button', { name: `Revoke ${count} leases` }).click();
    await page.getByText(`Revoked ${count} leases of bulk-cred.`).waitFor();
    await view('leases');
    await expect.poll(activeShown, { timeout: 5_000 }).toBe(1);
  });

  it('shows versions, fingerprints and active-lease counts, and rotates a credential', async () => {
    await view('credentials');
    const stripe = page.getByRole('row', { name: /stripe-key/ });
    await expect.poll(() => stripe.locator('td').nth(3).textContent()).toBe('1');
    const stripeApi = await vault.credentials.get('stripe-key');
    expect(await stripe.locator('td').nth(2).locator('code').getAttribute('title')).toBe(
      stripeApi.versions[0]!.fingerprint,
    );

    const github = page.getByRole('row', { name: /github-token/ });
    await github.getByRole('button', { name: 'Rotate github-token' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Rotate', exact: true }).click();
    await page.getByText('Rotated github-token to version 2.').waitFor();
    const rotated = await vault.credentials.get('github-token');
    expect(rotated.currentVersion).toBe(2);
    await github.getByRole('button', { name: 'Details of github-token' }).click();
    const details = page.locator('tr.details');
    for (const version of rotated.versions) {
      await details.getByText(version.fingerprint).waitFor();
    }
    await details.getByText('(current)').waitFor();
    expect(new Set(rotated.versions.map((v) => v.fingerprint)).size).toBe(2);
    await screenshot('credentials-rotated');
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
    const checkpoint = page.getByTestId('checkpoint-status');
    await checkpoint.getByText(/^Checkpoint at seq \d+ signed .* by key [0-9a-f]{16}\.$/).waitFor();
    // The next verification also checks the log still extends the checkpoint just taken.
    await page.getByRole('button', { name: 'Verify again' }).click();
    await checkpoint.getByText(/still extends the checkpoint at seq \d+/).waitFor();

    // Acting-for chains: leases dev-root created for claude-code.
    await page.getByLabel('Credential').fill('stripe-key');
    await page.getByLabel('Action').fill('lease.create');
    await applyAuditFilter();
    const created = page.getByTestId('audit-records').locator('li');
    await created.filter({ hasText: 'human/dev-root acting for agent/claude-code' }).first().waitFor();
    // Only stripe-key's leases (their records name the lease; the reason names the credential).
    for (const text of await created.allTextContents()) {
      expect(text).toContain('lease.create');
      expect(text).toMatch(/lease\/lease_\S+ · allowed — stripe-key v1 for /);
    }
    await page.getByRole('button', { name: 'Clear' }).click();
    await page.getByLabel('Action').fill('lease.revoke');
    await applyAuditFilter();
    const records = page.getByTestId('audit-records').locator('li');
    await expect.poll(() => records.count()).toBeGreaterThan(0);
    const actions = await page.getByTestId('audit-records').locator('li code').allTextContents();
    expect(new Set(actions)).toEqual(new Set(['lease.revoke']));
    await screenshot('audit');
    expect(await axeSerious()).toEqual([]);
  });

  it('reads identities and policies', async () => {
    await view('access');
    await page.getByRole('heading', { name: 'Policies', exact: true }).waitFor();
    await screenshot('access');
    expect(await axeSerious()).toEqual([]);
  });

  it('signs out without revoking; a user without reveal sees the refusal and never the value', async () => {
    await vault.policies.put('no-reveal', {
      description: 'lease but never read',
      rules: [{ actions: ['list', 'read-metadata', 'lease'] }],
    });
    await vault.identities.put('human', 'ann', { policies: [] });
    const ann = await vault.tokens.create({
      identity: { type: 'human', name: 'ann' },
      policies: ['no-reveal'],
    });

    expect(await page.evaluate('sessionStorage.length')).toBe(1);
    await signOut();
    expect(await page.evaluate('sessionStorage.length')).toBe(0);
    // Signing out forgot the token; it still works.
    expect((await vault.whoami()).identity.name).toBe('dev-root');

    await signIn(ann.token);
    await page.getByTestId('whoami').getByText('human/ann').waitFor();
    await view('leases');
    await page.getByTestId('stream-state').getByText('Live').waitFor();
    const annVault = await Vault.connect({ addr: dev.addr, token: ann.token, tenant: dev.tenant });
    const lease = await annVault.leases.create({ credentialName: 'stripe-key', ttl: '5m' });
    await leaseRow(lease.id).waitFor({ timeout: 2_000 });
    // Only what ann may see: not dev-root's leases for claude-code.
    expect(await activeShown()).toBe(1);

    await leaseRow(lease.id)
      .getByRole('button', { name: `Reveal value of ${lease.id}` })
      .click();
    await page.getByRole('dialog').getByRole('button', { name: 'Reveal and audit' }).click();
    await page
      .getByTestId('action-status')
      .getByText(/denied/i)
      .waitFor();
    expect(await page.getByTestId('revealed-value').count()).toBe(0);
    expect(await page.content()).not.toContain(canary);

    // Identities and policies are for admins: the view says so instead of showing them.
    await view('access');
    await page.getByRole('alert').first().waitFor();
    expect(await page.locator('.card').count()).toBe(0);
    await screenshot('access-denied');

    const denied = await vault.audit.query({
      action: 'lease.reveal',
      outcome: 'denied',
      identityName: 'ann',
    });
    expect(
      denied.some((r) => r.resource === `credential/stripe-key` || r.resource === `lease/${lease.id}`),
    ).toBe(true);

    await signOut();
    await signIn(dev.token);
    await page.getByTestId('whoami').getByText('human/dev-root').waitFor();
  });

  it('filters the audit by identity and outcome: the refused reveal', async () => {
    await view('audit');
    await page.getByLabel('Identity name').fill('ann');
    await page.getByLabel('Outcome').selectOption('denied');
    await applyAuditFilter();
    const records = page.getByTestId('audit-records').locator('li');
    await records.filter({ hasText: 'lease.reveal' }).first().waitFor();
    for (const text of await records.allTextContents()) {
      expect(text).toContain('human/ann');
      expect(text).toContain('denied');
    }
  });

  it('edits a policy and an identity where allowed, refuses bad JSON, and looks up a token', async () => {
    await view('access');
    const policy = page.locator('.card').filter({ has: page.getByText('no-reveal', { exact: true }) });
    await policy.getByRole('button', { name: 'Edit policy no-reveal' }).click();
    const editor = policy.getByLabel(/Policy \(JSON/);
    await editor.fill('{ "rules": [');
    await policy.getByRole('button', { name: 'Save' }).click();
    await policy
      .getByRole('alert')
      .getByText(/not valid JSON/)
      .waitFor();
    expect((await vault.policies.get('no-reveal')).description).toBe('lease but never read');
    await editor.fill(
      JSON.stringify({
        description: 'edited in the console',
        rules: [{ actions: ['list', 'read-metadata', 'lease'], maxTtl: '30m' }],
      }),
    );
    await policy.getByRole('button', { name: 'Save' }).click();
    await policy.getByText('edited in the console').waitFor();
    const saved = await vault.policies.get('no-reveal');
    expect(saved.description).toBe('edited in the console');
    expect(saved.rules[0]!.maxTtl).toBe('30m');

    const identity = page.locator('.card').filter({ has: page.getByText('human/ann', { exact: true }) });
    await identity.getByRole('button', { name: 'Edit policies of human/ann' }).click();
    await identity.getByLabel('Policies (comma-separated)').fill('no-reveal');
    await identity.getByRole('button', { name: 'Save' }).click();
    await identity.getByText('policies: no-reveal').waitFor();
    expect((await vault.identities.get('human', 'ann')).policies).toEqual(['no-reveal']);

    await page.getByLabel('Token accessor').fill(vault.self.accessor);
    await page.getByRole('button', { name: 'Look up' }).click();
    await page.getByText(/^human\/dev-root, policies /).waitFor();
    expect(await axeSerious()).toEqual([]);
  });

  it('shows which pods hold which leases in the Kubernetes view', async () => {
    const workload = { type: 'workload' as const, name: 'system:serviceaccount:payments:api' };
    const labelled = await vault.leases.create({
      credentialName: 'stripe-key',
      identity: workload,
      ttl: '5m',
      labels: { 'vault.ghoststack.io/pod': 'api-7d9f', 'vault.ghoststack.io/namespace': 'payments' },
    });
    const bare = await vault.leases.create({ credentialName: 'github-token', identity: workload, ttl: '5m' });
    await view('kubernetes');
    const namespace = page.locator('section[data-namespace="payments"]');
    await namespace
      .locator('[data-holder="pod api-7d9f"]')
      .getByText(labelled.id)
      .waitFor({ timeout: 2_000 });
    await namespace.locator('[data-holder="serviceaccount api"]').getByText(bare.id).waitFor();
    await expect
      .poll(() => namespace.locator('[data-holder="pod api-7d9f"] li').textContent())
      .toMatch(/stripe-key v1 · .* · \d+m \d\ds left/);
    // Leases of agents and people are not Kubernetes workloads.
    expect(await page.getByText('claude-code').count()).toBe(0);
    await screenshot('kubernetes');
    expect(await axeSerious()).toEqual([]);
    await vault.leases.revokeBulk({ identity: workload });
    await namespace.waitFor({ state: 'detached', timeout: 2_000 });
  });

  it('stays usable at 200% zoom and in dark mode (no horizontal scrolling, axe clean)', async () => {
    const background = () => page.evaluate('getComputedStyle(document.body).backgroundColor');
    await page.emulateMedia({ colorScheme: 'light' });
    expect(await background()).toBe('rgb(255, 255, 255)');
    await page.setViewportSize({ width: 640, height: 450 });
    await page.emulateMedia({ colorScheme: 'dark' });
    // The system's dark mode is followed.
    expect(await background()).toBe('rgb(18, 20, 22)');
    for (const name of ['leases', 'credentials', 'audit', 'access', 'kubernetes']) {
      await view(name);
      await page.waitForTimeout(300);
      expect(await overflowing(), `${name} scrolls sideways at 200%`).toEqual([]);
      expect(await axeSerious(), name).toEqual([]);
    }
    await view('leases');
    await screenshot('leases-dark-200');
  });

  it('loads under 200 KB of compressed JS and CSS', async () => {
    const html = await (await fetch(`${dev.addr}/ui/`)).text();
    const assets = [...html.matchAll(/(?:src|href)="(\/ui\/assets\/[^"]+\.(?:js|css))"/g)].map((m) => m[1]!);
    expect(assets.length).toBeGreaterThanOrEqual(2);
    let compressed = 0;
    for (const asset of assets) {
      compressed += gzipSync(Buffer.from(await (await fetch(`${dev.addr}${asset}`)).arrayBuffer())).length;
    }
    expect(compressed).toBeLessThan(200 * 1024);
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
