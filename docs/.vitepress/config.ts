/**
 * The documentation site (VitePress). `npm run docs:build` regenerates the reference pages,
 * builds into docs/.vitepress/dist (failing on a dead link to a page) and then checks every
 * link's anchor (scripts/docs/check-links.ts). Nothing is loaded from a third party: local
 * search, the theme's own fonts, no analytics.
 */
import { defineConfig } from 'vitepress';
import { sidebar } from './sidebar.js';

export default defineConfig({
  title: 'Vault',
  description:
    'Credentials for people, AI agents and Kubernetes workloads, handed out as audited, time-limited leases.',
  lang: 'en-GB',
  cleanUrls: true,
  lastUpdated: false,
  // The pages of the site; README-style folders elsewhere in docs/ are not pages.
  srcExclude: ['**/README.md'],
  markdown: { lineNumbers: false },
  // A test builds into fresh directories (a clean state) without touching these defaults.
  ...(process.env.DOCS_OUT_DIR && { outDir: process.env.DOCS_OUT_DIR }),
  ...(process.env.DOCS_CACHE_DIR && { cacheDir: process.env.DOCS_CACHE_DIR }),
  themeConfig: {
    search: { provider: 'local' },
    outline: { level: [2, 3], label: 'On this page' },
    nav: [
      { text: 'Getting Started', link: '/guide/getting-started' },
      { text: 'Claude Code', link: '/guide/claude-code' },
      { text: 'Kubernetes', link: '/kubernetes/' },
      { text: 'Helm', link: '/platform/helm' },
      { text: 'Operations', link: '/operations/' },
      { text: 'Reference', link: '/reference/http-api' },
      { text: 'Contributing', link: '/development/' },
    ],
    sidebar,
    footer: { message: 'Apache-2.0 licensed.' },
  },
});
