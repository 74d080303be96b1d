/**
 * Debian's Chromium driven by playwright-core (never a downloaded browser), and the console
 * built with Vite into dist/ui, as `npm run build` does.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, chromium } from 'playwright-core';
import { repoRoot } from '../support/vault-dev.js';

export const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const haveChromium = existsSync(chromiumPath);

/**
 * Builds the console (a few seconds) so the test never runs against a stale bundle: into
 * dist/ui, or into `outDir` (a suite serving its own copy cannot race one rebuilding dist/ui).
 */
export function buildConsole(outDir?: string): void {
  execFileSync(
    process.execPath,
    [
      join(repoRoot, 'node_modules/vite/bin/vite.js'),
      'build',
      '--config',
      'ui/vite.config.ts',
      '--logLevel',
      'warn',
      ...(outDir ? ['--outDir', outDir, '--emptyOutDir'] : []),
    ],
    {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
}

/** A fresh profile each time (playwright's temporary user-data-dir); no network but loopback. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-dev-shm-usage',
    ],
  });
}
