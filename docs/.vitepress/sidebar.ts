/**
 * The site's navigation, by audience. Every page of docs/ appears here once
 * (test/docs/site.test.ts fails on a page no one can reach).
 */
import type { DefaultTheme } from 'vitepress';

export const sidebar: DefaultTheme.SidebarItem[] = [
  {
    text: 'Start here',
    items: [
      { text: 'Getting Started', link: '/guide/getting-started' },
      { text: 'What Vault is', link: '/guide/introduction' },
      { text: 'Concepts', link: '/guide/concepts' },
    ],
  },
  {
    text: 'Developers and agents',
    items: [
      { text: 'Claude Code (MCP)', link: '/guide/claude-code' },
      { text: 'The CLI', link: '/guide/cli' },
      { text: 'The SDK', link: '/guide/sdk' },
      { text: 'The HTTP API', link: '/guide/http-api' },
      { text: 'The web console', link: '/guide/web-console' },
      { text: 'Dynamic database credentials', link: '/guide/dynamic' },
    ],
  },
  {
    text: 'Kubernetes for app teams',
    items: [
      { text: 'Overview (kubectl)', link: '/kubernetes/' },
      { text: 'VaultCredential and VaultLease', link: '/kubernetes/resources' },
      { text: 'Injecting credentials into pods', link: '/kubernetes/injection' },
    ],
  },
  {
    text: 'Helm for platform teams',
    items: [
      { text: 'Install with Helm', link: '/platform/helm' },
      { text: 'The first token', link: '/platform/helm#the-first-token' },
      { text: 'TLS and private CAs', link: '/platform/helm#tls-and-private-cas' },
      { text: 'Upgrade', link: '/platform/helm#upgrade' },
      { text: 'Backup and restore', link: '/platform/backup-restore' },
      { text: 'Uninstall', link: '/platform/uninstall' },
      { text: 'Running the server', link: '/platform/server' },
      { text: 'Storage', link: '/platform/storage' },
      { text: 'Container image', link: '/platform/container-image' },
    ],
  },
  {
    text: 'Security',
    items: [
      { text: 'Security model', link: '/security/' },
      { text: 'Encryption and keys', link: '/security/encryption' },
    ],
  },
  {
    text: 'Operations',
    items: [
      { text: 'Metrics and alerts', link: '/operations/' },
      { text: 'Runbooks', link: '/operations/runbooks' },
    ],
  },
  {
    text: 'Reference',
    items: [
      { text: 'HTTP API', link: '/reference/http-api' },
      { text: 'CLI', link: '/reference/cli' },
      { text: 'MCP tools', link: '/reference/mcp-tools' },
      { text: 'Custom resources', link: '/reference/crds' },
      { text: 'Helm values', link: '/reference/helm-values' },
      { text: 'Metrics', link: '/reference/metrics' },
    ],
  },
  {
    text: 'Contributing',
    collapsed: true,
    items: [
      { text: 'Development', link: '/development/' },
      { text: 'Test control plane and cluster', link: '/development/control-plane' },
      { text: 'Benchmarks', link: '/development/benchmarks' },
      { text: 'How the chart is tested', link: '/development/chart-tests' },
    ],
  },
];
