import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import express, { type RequestHandler, Router } from 'express';

/**
 * The built console (`npm run build` puts it in dist/ui). From src/server (tsx) and from
 * dist/server (the image) alike, that is ../../dist/ui.
 */
export const defaultUiDir = fileURLToPath(new URL('../../dist/ui/', import.meta.url));

/**
 * No inline script or style, nothing from another origin, no framing. The console talks only
 * to this server's API (connect-src 'self'), so a stolen page cannot send the token elsewhere.
 */
export const uiContentSecurityPolicy = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const securityHeaders: RequestHandler = (_req, res, next) => {
  res.setHeader('content-security-policy', uiContentSecurityPolicy);
  res.setHeader('x-frame-options', 'DENY');
  res.setHeader('x-content-type-options', 'nosniff');
  res.setHeader('referrer-policy', 'no-referrer');
  res.setHeader('cross-origin-opener-policy', 'same-origin');
  res.setHeader('cross-origin-resource-policy', 'same-origin');
  res.setHeader('permissions-policy', 'camera=(), microphone=(), geolocation=(), clipboard-read=()');
  next();
};

/** `/ui`: the console's static files, with a strict CSP on every response. */
export function uiRouter(dir: string): Router {
  const router = Router();
  router.use(securityHeaders);
  const index = join(dir, 'index.html');
  if (!existsSync(index)) {
    router.use((_req, res) => {
      res
        .status(503)
        .type('text/plain')
        .send('The web console is not built: run `npm run build` (or start the server with --no-ui).\n');
    });
    return router;
  }
  // Hashed file names: cached for good. index.html: never, so a new build is picked up.
  // No directory redirects: serve-static builds their Location from the request target, and
  // an absolute-form target (`GET http://elsewhere/ui`) would send the browser to that host.
  router.use(
    '/assets',
    express.static(join(dir, 'assets'), { immutable: true, maxAge: '365d', index: false, redirect: false }),
    (_req, res) => {
      res.status(404).type('text/plain').send('no such asset\n');
    },
  );
  // Every other path (/ui, /ui/, /ui/index.html, a client route) is the page itself.
  router.get('/{*rest}', (_req, res) => {
    res.setHeader('cache-control', 'no-store');
    res.sendFile(index);
  });
  return router;
}
