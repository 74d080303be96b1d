/**
 * Web console benchmark (issue 16, "Performance"): `npx tsx test/bench/ui.ts`.
 *
 * A real `vault dev` (temporary data dir), the console built as `npm run build:ui` builds it,
 * Debian's Chromium through playwright-core. It logs in through the UI, opens the live-lease
 * view, and while the page is open creates BENCH_LEASES (1,000) leases through the SDK as fast
 * as the server accepts them (BENCH_CONCURRENCY in flight). Measured in the page:
 *
 * - long tasks (PerformanceObserver 'longtask') and requestAnimationFrame gaps: the longest,
 *   and how many frames took over 50 ms;
 * - the time from the first create until every lease row is in the DOM;
 * - Chromium's own accounting over the window (CDP Performance.getMetrics: script, layout,
 *   style recalculation and task time);
 * - the initial load: the JS and CSS the page loads, gzip-compressed with node:zlib at the
 *   default level (the server itself sends them uncompressed; a proxy in front would gzip).
 *
 * Side by side in the same run: the same page idle with no leases (before), the same 1,000
 * creates while the page shows Credentials (no lease stream: what the busy machine alone costs
 * the page; revoked again afterwards), idle with the
 * 1,000 rows shown (the TTL bars tick every second), and a reload fetching the same 1,000
 * leases as one snapshot. Not a test: it prints numbers and ratios, and never fails on them.
 */

import { cpus, loadavg } from 'node:os';
import { gzipSync } from 'node:zlib';
import type { CDPSession, Page } from 'playwright-core';
import { Vault } from '../../src/sdk/index.js';
import { startVaultDev } from '../support/vault-dev.js';
import { buildConsole, haveChromium, launchChromium } from '../ui/browser.js';

const LEASES = Number(process.env.BENCH_LEASES ?? 1000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
const IDLE_MS = Number(process.env.BENCH_IDLE_MS ?? 3000);
const IDENTITIES = 20;

/**
 * Installed before any page script (the file is type-checked for Node, so a string). Records
 * every long task and every rAF gap; `__bench.reset()` starts a window, `__bench.read()` ends it.
 */
const instrument = `(() => {
  // start 0: a fresh document's window runs from navigation start.
  const b = { longtasks: [], gaps: [], start: 0, rowsAt: 0, want: 0, last: 0 };
  window.__bench = b;
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) if (e.startTime >= b.start) b.longtasks.push(e.duration);
    }).observe({ type: 'longtask', buffered: true });
  } catch {}
  const tick = (t) => {
    if (b.last) b.gaps.push(t - b.last);
    b.last = t;
    const want = b.want || window.__benchWant || 0;
    if (want && !b.rowsAt && document.querySelectorAll('li.lease').length >= want) b.rowsAt = t;
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
  b.reset = (want) => {
    b.longtasks = []; b.gaps = []; b.start = performance.now(); b.last = 0; b.rowsAt = 0; b.want = want || 0;
  };
  b.read = () => ({
    elapsed: performance.now() - b.start,
    longtasks: b.longtasks.slice(),
    gaps: b.gaps.slice(),
    rowsAfter: b.rowsAt ? b.rowsAt - b.start : null,
    rows: document.querySelectorAll('li.lease').length,
  });
})();`;

interface Window {
  label: string;
  elapsedMs: number;
  longTasks: number;
  longestTaskMs: number;
  frames: number;
  longestFrameMs: number;
  framesOver50: number;
  p95FrameMs: number;
  rowsAfterMs: number | null;
  rows: number;
  cdp: Record<string, number>;
}

const cdpKeys = ['TaskDuration', 'ScriptDuration', 'LayoutDuration', 'RecalcStyleDuration'] as const;

async function cdpMetrics(cdp: CDPSession): Promise<Record<string, number>> {
  const { metrics } = (await cdp.send('Performance.getMetrics')) as {
    metrics: { name: string; value: number }[];
  };
  return Object.fromEntries(metrics.map((m) => [m.name, m.value]));
}

async function measure(
  page: Page,
  cdp: CDPSession,
  label: string,
  wantRows: number,
  during: () => Promise<void>,
): Promise<Window> {
  await page.evaluate(`window.__bench.reset(${wantRows})`);
  const before = await cdpMetrics(cdp);
  await during();
  const raw = (await page.evaluate('window.__bench.read()')) as {
    elapsed: number;
    longtasks: number[];
    gaps: number[];
    rowsAfter: number | null;
    rows: number;
  };
  const after = await cdpMetrics(cdp);
  return summarize(label, raw, before, after);
}

function summarize(
  label: string,
  raw: { elapsed: number; longtasks: number[]; gaps: number[]; rowsAfter: number | null; rows: number },
  before: Record<string, number>,
  after: Record<string, number>,
): Window {
  const sorted = [...raw.gaps].sort((a, b) => a - b);
  return {
    label,
    elapsedMs: raw.elapsed,
    longTasks: raw.longtasks.length,
    longestTaskMs: Math.max(0, ...raw.longtasks),
    frames: raw.gaps.length,
    longestFrameMs: Math.max(0, ...raw.gaps),
    framesOver50: raw.gaps.filter((g) => g > 50).length,
    p95FrameMs: sorted[Math.min(sorted.length - 1, Math.ceil(0.95 * sorted.length) - 1)] ?? 0,
    rowsAfterMs: raw.rowsAfter,
    rows: raw.rows,
    cdp: Object.fromEntries(cdpKeys.map((k) => [k, ((after[k] ?? 0) - (before[k] ?? 0)) * 1000])),
  };
}

/** Polled from here: the page's CSP (no eval) rules out waitForFunction with a string. */
async function allRows(page: Page, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const done = await page.evaluate('!!(window.__bench && window.__bench.rowsAt > 0)').catch(() => false);
    if (done) return;
    await sleep(100);
  }
  throw new Error('not every lease row appeared in time');
}

const sleep = (t: number) => new Promise<void>((done) => setTimeout(done, t));
const fmt = (n: number | null, unit = 'ms') => (n === null ? 'n/a' : `${n.toFixed(1)} ${unit}`);
const ratio = (a: number | null, b: number | null) =>
  a === null || b === null || b === 0 ? 'n/a' : `${(a / b).toFixed(2)}×`;

async function main() {
  if (!haveChromium) {
    console.log('No Chromium at /usr/bin/chromium (or CHROMIUM_PATH): nothing to measure.');
    return;
  }
  console.log(
    `machine: ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}; ${LEASES} leases, ${CONCURRENCY} creates in flight`,
  );
  buildConsole();
  const dev = await startVaultDev();
  const browser = await launchChromium();
  try {
    const vault = await Vault.connect({ addr: dev.addr, token: dev.token, tenant: dev.tenant });
    await vault.credentials.create({ name: 'bench-key', type: 'api-key', value: 'bench-value' });
    await vault.credentials.create({ name: 'bench-db', type: 'api-key', value: 'bench-value-2' });

    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    await context.addInitScript({ content: instrument });
    const page = await context.newPage();
    const assets = new Map<string, Promise<Buffer>>();
    page.on('response', (response) => {
      const url = new URL(response.url());
      if (/\.(js|css)$/.test(url.pathname)) assets.set(url.pathname, response.body());
    });
    const cdp = await context.newCDPSession(page);
    await cdp.send('Performance.enable');

    // Log in through the UI, as a person does.
    await page.goto(`${dev.addr}/ui/`);
    await page.locator('#token').fill(dev.token);
    await page.keyboard.press('Enter');
    await page.getByTestId('whoami').getByText('human/dev-root').waitFor();
    await page.locator('a[href="#/leases"]').click();
    await page.getByTestId('stream-state').getByText('Live').waitFor();

    // Initial load size.
    let raw = 0;
    let gzipped = 0;
    const files: string[] = [];
    for (const [path, body] of assets) {
      const bytes = await body;
      const gz = gzipSync(bytes).length;
      raw += bytes.length;
      gzipped += gz;
      files.push(`${path} ${(bytes.length / 1024).toFixed(1)} KB → ${(gz / 1024).toFixed(1)} KB gzip`);
    }

    await sleep(500);
    const idleEmpty = await measure(page, cdp, 'idle, no leases', 0, () => sleep(IDLE_MS));

    /** BENCH_LEASES creates through the SDK, CONCURRENCY in flight; returns the milliseconds taken. */
    const createLeases = async (): Promise<number> => {
      const started = performance.now();
      let next = 0;
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (next < LEASES) {
            const i = next++;
            await vault.leases.create({
              credentialName: i % 3 === 0 ? 'bench-db' : 'bench-key',
              identity: { type: 'agent', name: `bench-agent-${i % IDENTITIES}` },
              ttl: '30m',
            });
          }
        }),
      );
      return performance.now() - started;
    };

    // Baseline for the machine itself: the same creates while the page shows Credentials (no
    // lease stream), so the server and this client compete for the same cores as below.
    await page.locator('a[href="#/credentials"]').click();
    await page.getByRole('row', { name: /bench-key/ }).waitFor();
    let quietCreatedMs = 0;
    const quiet = await measure(page, cdp, `same creates, no stream`, 0, async () => {
      quietCreatedMs = await createLeases();
    });
    await vault.leases.revokeBulk({ all: true });
    await page.locator('a[href="#/leases"]').click();
    await page.getByTestId('stream-state').getByText('Live').waitFor();
    await page.getByText('No active leases').waitFor();
    await sleep(500);

    let createdMs = 0;
    const stream = await measure(page, cdp, `stream ${LEASES} creates`, LEASES, async () => {
      createdMs = await createLeases();
      await allRows(page);
      await sleep(300);
    });

    const idleFull = await measure(page, cdp, `idle, ${LEASES} rows`, 0, () => sleep(IDLE_MS));

    // Baseline: the same leases as one snapshot (GET /v1/leases) after a reload.
    await page.addInitScript({ content: `window.__benchWant = ${LEASES};` });
    await page.reload();
    await allRows(page);
    await sleep(300);
    // After a reload the init script runs afresh and Chromium's counters restart: both windows
    // start at navigation.
    const reloadRaw = (await page.evaluate('window.__bench.read()')) as Parameters<typeof summarize>[1];
    const reload = summarize(`reload, ${LEASES} as a snapshot`, reloadRaw, {}, await cdpMetrics(cdp));

    console.log(
      `\ninitial load: ${files.length} files, ${(raw / 1024).toFixed(1)} KB raw, ${(gzipped / 1024).toFixed(1)} KB gzip (budget 200 KB)`,
    );
    for (const line of files) console.log(`  ${line}`);
    console.log(
      `\nstream: ${LEASES} leases created in ${fmt(createdMs)} (${((LEASES / createdMs) * 1000).toFixed(0)}/s)`,
    );
    console.log(`same creates with no stream: ${fmt(quietCreatedMs)}`);
    const rows = [idleEmpty, quiet, stream, idleFull, reload];
    const table: Record<string, Record<string, string | number>> = {};
    for (const w of rows) {
      table[w.label] = {
        window: fmt(w.elapsedMs),
        'longest task': fmt(w.longestTaskMs),
        'long tasks': w.longTasks,
        'longest frame': fmt(w.longestFrameMs),
        'p95 frame': fmt(w.p95FrameMs),
        'frames > 50 ms': w.framesOver50,
        frames: w.frames,
        'all rows after': fmt(w.rowsAfterMs),
        rows: w.rows,
        script: fmt(w.cdp.ScriptDuration ?? 0),
        layout: fmt(w.cdp.LayoutDuration ?? 0),
        style: fmt(w.cdp.RecalcStyleDuration ?? 0),
        'all tasks': fmt(w.cdp.TaskDuration ?? 0),
      };
    }
    console.table(table);
    console.log(
      `stream vs reload: longest frame ${ratio(stream.longestFrameMs, reload.longestFrameMs)}, ` +
        `all rows after ${ratio(stream.rowsAfterMs, reload.rowsAfterMs)}, ` +
        `script ${ratio(stream.cdp.ScriptDuration ?? 0, reload.cdp.ScriptDuration ?? 0)}`,
    );
    console.log(
      `stream vs same creates without the stream: longest frame ${ratio(stream.longestFrameMs, quiet.longestFrameMs)}, ` +
        `frames over 50 ms ${stream.framesOver50} vs ${quiet.framesOver50}, longest task ${ratio(stream.longestTaskMs, quiet.longestTaskMs)}`,
    );
    console.log(
      `stream vs idle (no leases): longest frame ${ratio(stream.longestFrameMs, idleEmpty.longestFrameMs)}; ` +
        `idle with ${LEASES} rows vs idle empty: longest frame ${ratio(idleFull.longestFrameMs, idleEmpty.longestFrameMs)}, ` +
        `script ${ratio(idleFull.cdp.ScriptDuration ?? 0, idleEmpty.cdp.ScriptDuration ?? 0)}`,
    );
    console.log(
      `load average after: ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
    );
  } finally {
    await browser.close();
    await dev.stop();
  }
}

await main();
