/**
 * Web console benchmark (issue 16, "Performance"): `npx tsx test/bench/ui.ts`.
 *
 * A real `vault dev` (temporary data dir), the console built as `npm run build:ui` builds it,
 * Debian's Chromium through playwright-core. It logs in through the UI, opens the live-lease
 * view, and while the page is open creates BENCH_LEASES (1,000) leases through the SDK as fast
 * as the server accepts them (BENCH_CONCURRENCY in flight).
 *
 * Frames are measured with Playwright's Chromium tracing (`browser.startTracing`): a frame is
 * the time between two consecutive `DrawFrame` events of the page's renderer, so a main thread
 * that is busy shows up as a long frame. A requestAnimationFrame loop runs in the page the
 * whole time, so the page asks for a frame at every vsync even when nothing changes (an idle
 * page would otherwise draw nothing, and its gaps would mean nothing). Also from the trace: the
 * longest main-thread animation frame (`AnimationFrame`), main-thread tasks over 50 ms by the
 * clock and by CPU time (a task can take 200 ms of wall time on a loaded machine while the
 * page spent 10 ms of CPU on it: the CPU columns are the page's own cost). The loop's own gaps
 * are printed beside them, and Chromium's script/layout time (CDP).
 *
 * Side by side in the same run, each with the load average at its start:
 * - idle, no leases: the page with the stream open and nothing happening;
 * - the same 1,000 creates while the page shows Credentials (no lease stream): what the busy
 *   machine alone costs the page;
 * - the 1,000 creates streaming into the Leases view (the subject);
 * - idle with the 1,000 leases shown (the TTL bars run down), and scrolling through them;
 * - the same stream with `?lines=all`: every line rendered, no virtualization (the old path);
 * - a reload fetching the same 1,000 leases as one snapshot.
 * Not a test: it prints numbers and ratios, and never fails on them. The machine is shared,
 * so read the baselines' numbers with the subject's.
 */

import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { Browser, CDPSession, Page } from 'playwright-core';
import { Vault } from '../../src/sdk/index.js';
import { startVaultDev } from '../support/vault-dev.js';
import { buildConsole, haveChromium, launchChromium } from '../ui/browser.js';

const LEASES = Number(process.env.BENCH_LEASES ?? 1000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
const IDLE_MS = Number(process.env.BENCH_IDLE_MS ?? 3000);
const IDENTITIES = 20;
/** When set, each window's trace is written there (open it in Chrome DevTools or Perfetto). */
const TRACE_DIR = process.env.BENCH_TRACE_DIR;

/**
 * Installed before any page script (the file is type-checked for Node, so a string). Keeps a
 * frame requested at every vsync and records the loop's gaps; `__bench.reset(want)` starts a
 * window and notes when the lease count reaches `want`, `__bench.read()` ends it.
 */
const instrument = `(() => {
  const b = { gaps: [], start: 0, doneAt: 0, want: 0, last: 0 };
  window.__bench = b;
  // A pixel that changes every frame, so every frame is drawn (DrawFrame) even when idle.
  const pixel = document.createElement('div');
  addEventListener('DOMContentLoaded', () => {
    Object.assign(pixel.style, { position: 'fixed', right: '0', bottom: '0', width: '1px', height: '1px', pointerEvents: 'none' });
    pixel.setAttribute('aria-hidden', 'true');
    document.body.append(pixel);
  });
  let odd = false;
  const active = () => Number(document.querySelector('[data-testid="lease-summary"]')?.dataset.active ?? -1);
  const tick = (t) => {
    if (b.last) b.gaps.push(t - b.last);
    b.last = t;
    odd = !odd;
    pixel.style.backgroundColor = odd ? 'rgb(0 0 0 / 0.02)' : 'rgb(0 0 0 / 0.03)';
    const want = b.want || window.__benchWant || 0;
    if (want && !b.doneAt && active() >= want) b.doneAt = t;
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
  b.reset = (want) => { b.gaps = []; b.start = performance.now(); b.last = 0; b.doneAt = 0; b.want = want || 0; };
  b.active = active;
  b.read = () => ({ elapsed: performance.now() - b.start, gaps: b.gaps.slice(), doneAfter: b.doneAt ? b.doneAt - b.start : null });
})();`;

interface TraceEvent {
  name: string;
  ph: string;
  pid: number;
  tid: number;
  ts: number;
  dur?: number;
  /** Thread (CPU) time of a complete event. */
  tdur?: number;
  id2?: { local?: string };
  id?: string;
  args?: Record<string, unknown>;
}

interface FrameStats {
  count: number;
  over50: number;
  longest: number;
  p99: number;
  p95: number;
}

function frameStats(durations: number[]): FrameStats {
  const sorted = [...durations].sort((a, b) => a - b);
  const pct = (p: number) => sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)] ?? 0;
  return {
    count: sorted.length,
    over50: sorted.filter((d) => d > 50).length,
    longest: sorted.at(-1) ?? 0,
    p99: pct(0.99),
    p95: pct(0.95),
  };
}

/** Frames, animation frames and long tasks of the page's renderer (the one that drew most). */
function analyzeTrace(buffer: Buffer) {
  const { traceEvents } = JSON.parse(buffer.toString('utf8')) as { traceEvents: TraceEvent[] };
  const names = new Map<string, string>();
  for (const e of traceEvents) {
    if (e.name === 'thread_name') names.set(`${e.pid}/${e.tid}`, String(e.args?.name));
  }
  const draws = new Map<number, number[]>();
  for (const e of traceEvents) {
    if (e.name === 'DrawFrame') draws.set(e.pid, [...(draws.get(e.pid) ?? []), e.ts]);
  }
  const [pid, drawn] = [...draws.entries()].sort((a, b) => b[1].length - a[1].length)[0] ?? [0, []];
  drawn.sort((a, b) => a - b);
  const frames = drawn.slice(1).map((t, i) => (t - drawn[i]!) / 1000);

  const isMain = (e: TraceEvent) => e.pid === pid && names.get(`${e.pid}/${e.tid}`) === 'CrRendererMain';
  const opened = new Map<string, number>();
  const animationFrames: number[] = [];
  const longTasks: number[] = [];
  let longestTaskCpu = 0;
  let tasksCpuOver50 = 0;
  for (const e of traceEvents) {
    if (!isMain(e)) continue;
    if (e.name === 'AnimationFrame') {
      const id = e.id2?.local ?? e.id ?? '';
      if (e.ph === 'b') opened.set(id, e.ts);
      else if (e.ph === 'e' && opened.has(id)) animationFrames.push((e.ts - opened.get(id)!) / 1000);
    } else if (e.name === 'ThreadControllerImpl::RunTask' && e.ph === 'X') {
      if ((e.dur ?? 0) > 50_000) longTasks.push(e.dur! / 1000);
      // CPU time: what the page itself spent, however long the OS kept the thread waiting.
      longestTaskCpu = Math.max(longestTaskCpu, (e.tdur ?? 0) / 1000);
      if ((e.tdur ?? 0) > 50_000) tasksCpuOver50 += 1;
    }
  }
  return {
    frames: frameStats(frames),
    longestAnimationFrame: Math.max(0, ...animationFrames),
    longTasks: longTasks.length,
    longestTask: Math.max(0, ...longTasks),
    tasksCpuOver50,
    longestTaskCpu,
  };
}

interface Window {
  label: string;
  load: number;
  elapsedMs: number;
  trace: ReturnType<typeof analyzeTrace>;
  raf: FrameStats;
  doneAfterMs: number | null;
  cdp: Record<string, number>;
}

const cdpKeys = ['ScriptDuration', 'LayoutDuration', 'RecalcStyleDuration'] as const;

async function cdpMetrics(cdp: CDPSession): Promise<Record<string, number>> {
  const { metrics } = (await cdp.send('Performance.getMetrics')) as {
    metrics: { name: string; value: number }[];
  };
  return Object.fromEntries(metrics.map((m) => [m.name, m.value]));
}

const traceCategories = ['devtools.timeline', 'disabled-by-default-devtools.timeline.frame', 'toplevel'];

/** One measured window: traced from start to end, with the load average at its start. */
async function measure(
  browser: Browser,
  page: Page,
  cdp: CDPSession,
  label: string,
  want: number,
  during: () => Promise<void>,
): Promise<Window> {
  const load = loadavg()[0]!;
  await browser.startTracing(page, { categories: traceCategories });
  await page.evaluate(`window.__bench.reset(${want})`);
  const before = await cdpMetrics(cdp);
  await during();
  const raw = (await page.evaluate('window.__bench.read()')) as {
    elapsed: number;
    gaps: number[];
    doneAfter: number | null;
  };
  const after = await cdpMetrics(cdp);
  const buffer = await browser.stopTracing();
  if (TRACE_DIR) writeFileSync(join(TRACE_DIR, `${label.replace(/[^a-z0-9]+/gi, '-')}.json`), buffer);
  const trace = analyzeTrace(buffer);
  return {
    label,
    load,
    elapsedMs: raw.elapsed,
    trace,
    raf: frameStats(raw.gaps),
    doneAfterMs: raw.doneAfter,
    cdp: Object.fromEntries(cdpKeys.map((k) => [k, ((after[k] ?? 0) - (before[k] ?? 0)) * 1000])),
  };
}

/** Polled from here: the page's CSP (no eval) rules out waitForFunction with a string. */
async function activeLeases(page: Page, count: number, timeoutMs = 180_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await page.evaluate('window.__bench.active()').catch(() => -1)) === count) return;
    await sleep(100);
  }
  throw new Error(`the page did not show ${count} active leases in time`);
}

const sleep = (t: number) => new Promise<void>((done) => setTimeout(done, t));
const ms = (n: number | null) => (n === null ? 'n/a' : `${n.toFixed(1)} ms`);
const ratio = (a: number, b: number) => (b === 0 ? 'n/a' : `${(a / b).toFixed(2)}×`);
const uptime = () =>
  `load average ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}`;

async function main() {
  if (!haveChromium) {
    console.log('No Chromium at /usr/bin/chromium (or CHROMIUM_PATH): nothing to measure.');
    return;
  }
  console.log(
    `machine: ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), ${uptime()}; ${LEASES} leases, ${CONCURRENCY} creates in flight`,
  );
  buildConsole();
  if (TRACE_DIR) mkdirSync(TRACE_DIR, { recursive: true });
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
    const revokeAll = async () => {
      await vault.leases.revokeBulk({ all: true });
      await activeLeases(page, 0);
      await sleep(500);
    };
    const created: Record<string, number> = {};
    const windows: Window[] = [];

    await sleep(500);
    windows.push(await measure(browser, page, cdp, 'idle, no leases', 0, () => sleep(IDLE_MS)));

    await page.locator('a[href="#/credentials"]').click();
    await page.getByRole('row', { name: /bench-key/ }).waitFor();
    windows.push(
      await measure(browser, page, cdp, 'same creates, no stream', 0, async () => {
        created['no stream'] = await createLeases();
      }),
    );
    await page.locator('a[href="#/leases"]').click();
    await page.getByTestId('stream-state').getByText('Live').waitFor();
    await activeLeases(page, LEASES);
    await revokeAll();

    const stream = await measure(browser, page, cdp, `stream ${LEASES} creates`, LEASES, async () => {
      created.stream = await createLeases();
      await activeLeases(page, LEASES);
      await sleep(300);
    });
    windows.push(stream);
    windows.push(await measure(browser, page, cdp, `idle, ${LEASES} shown`, 0, () => sleep(IDLE_MS)));
    windows.push(
      await measure(browser, page, cdp, `scrolling the ${LEASES}`, 0, async () => {
        await page.mouse.move(640, 600);
        const until = Date.now() + IDLE_MS;
        while (Date.now() < until) {
          await page.mouse.wheel(0, 400);
          await sleep(50);
        }
      }),
    );

    // Baseline: the same stream with every line in the DOM (no virtualization).
    await page.evaluate('window.scrollTo(0, 0)');
    await revokeAll();
    await page.goto(`${dev.addr}/ui/?lines=all#/leases`);
    await page.getByTestId('stream-state').getByText('Live').waitFor();
    await sleep(500);
    const allLines = await measure(browser, page, cdp, `stream ${LEASES}, ?lines=all`, LEASES, async () => {
      created['lines=all'] = await createLeases();
      await activeLeases(page, LEASES);
      await sleep(300);
    });
    windows.push(allLines);

    // Baseline: the same leases as one snapshot (GET /v1/leases) after a reload.
    const reloadLoad = loadavg()[0]!;
    await browser.startTracing(page, { categories: traceCategories });
    await page.addInitScript({ content: `window.__benchWant = ${LEASES};` });
    await page.goto(`${dev.addr}/ui/#/leases`);
    await activeLeases(page, LEASES);
    await sleep(300);
    const reloadRaw = (await page.evaluate('window.__bench.read()')) as {
      elapsed: number;
      gaps: number[];
      doneAfter: number | null;
    };
    windows.push({
      label: `reload, ${LEASES} as a snapshot`,
      load: reloadLoad,
      elapsedMs: reloadRaw.elapsed,
      trace: analyzeTrace(await browser.stopTracing()),
      raf: frameStats(reloadRaw.gaps),
      doneAfterMs: reloadRaw.doneAfter,
      cdp: {},
    });

    console.log(
      `\ninitial load: ${files.length} files, ${(raw / 1024).toFixed(1)} KB raw, ${(gzipped / 1024).toFixed(1)} KB gzip (budget 200 KB)`,
    );
    for (const line of files) console.log(`  ${line}`);
    console.log(
      `\n${LEASES} creates took: ${Object.entries(created)
        .map(([k, v]) => `${k} ${ms(v)} (${((LEASES / v) * 1000).toFixed(0)}/s)`)
        .join(', ')}`,
    );
    const table: Record<string, Record<string, string | number>> = {};
    for (const w of windows) {
      table[w.label] = {
        'load avg': w.load.toFixed(2),
        window: ms(w.elapsedMs),
        frames: w.trace.frames.count,
        '> 50 ms': w.trace.frames.over50,
        longest: ms(w.trace.frames.longest),
        p99: ms(w.trace.frames.p99),
        p95: ms(w.trace.frames.p95),
        'longest anim. frame': ms(w.trace.longestAnimationFrame),
        'tasks > 50 ms': w.trace.longTasks,
        'longest task': ms(w.trace.longestTask),
        'tasks > 50 ms CPU': w.trace.tasksCpuOver50,
        'longest task CPU': ms(w.trace.longestTaskCpu),
        'rAF > 50 ms': w.raf.over50,
        'rAF longest': ms(w.raf.longest),
        'all shown after': ms(w.doneAfterMs),
        script: w.cdp.ScriptDuration === undefined ? 'n/a' : ms(w.cdp.ScriptDuration),
        layout: w.cdp.LayoutDuration === undefined ? 'n/a' : ms(w.cdp.LayoutDuration),
      };
    }
    console.log('\nframes from the trace (DrawFrame to DrawFrame); rAF columns from the in-page loop');
    console.table(table);
    const quiet = windows[1]!;
    console.log(
      `stream vs same creates without a stream: frames over 50 ms ${stream.trace.frames.over50} vs ${quiet.trace.frames.over50}, ` +
        `longest ${ratio(stream.trace.frames.longest, quiet.trace.frames.longest)}, p99 ${ratio(stream.trace.frames.p99, quiet.trace.frames.p99)}`,
    );
    console.log(
      `stream vs ?lines=all (every line rendered): frames over 50 ms ${stream.trace.frames.over50} vs ${allLines.trace.frames.over50}, ` +
        `longest ${ratio(stream.trace.frames.longest, allLines.trace.frames.longest)}, ` +
        `script ${ratio(stream.cdp.ScriptDuration ?? 0, allLines.cdp.ScriptDuration ?? 0)}, ` +
        `layout ${ratio(stream.cdp.LayoutDuration ?? 0, allLines.cdp.LayoutDuration ?? 0)}`,
    );
    console.log(`after: ${uptime()}`);
  } finally {
    await browser.close();
    await dev.stop();
  }
}

await main();
