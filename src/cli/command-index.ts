/**
 * Every command group of `vault`, in help order, with what `vault --help` shows for each of
 * its commands. A group's module (and what it imports: the server, the store, the Kubernetes
 * client) loads only when one of its commands runs; the top-level help is drawn from this
 * table instead. `test/cli/help.test.ts` checks the table against the modules.
 */
import { type Command, Help } from 'commander';

export type Register = (program: Command) => void;

export interface CommandSummary {
  name: string;
  aliases?: string[];
  /** How `vault --help` lists it, e.g. `run [options] <command...>`. */
  term: string;
  description: string;
}

export interface CommandGroup {
  commands: CommandSummary[];
  load: () => Promise<{ register: Register }>;
}

export const commandGroups: CommandGroup[] = [
  {
    commands: [
      {
        name: 'dev',
        term: 'dev [options]',
        description: 'Run Vault for development on an embedded store; prints export lines for your shell',
      },
    ],
    load: () => import('./dev.js'),
  },
  {
    commands: [
      {
        name: 'server',
        term: 'server [options]',
        description: 'Run the Vault API for production: etcd or embedded store, a root key you provide, TLS',
      },
    ],
    load: () => import('./server.js'),
  },
  {
    commands: [
      {
        name: 'login',
        term: 'login [options]',
        description: 'Validate a token and store it for later commands (or print export lines with --print)',
      },
      {
        name: 'logout',
        term: 'logout',
        description: 'Forget the stored token (it stays valid until it expires or is revoked)',
      },
      { name: 'whoami', term: 'whoami [options]', description: 'Who the current token authenticates' },
    ],
    load: () => import('./login.js'),
  },
  {
    commands: [
      {
        name: 'credentials',
        aliases: ['creds'],
        term: 'credentials|creds',
        description: 'Create and manage credentials (values go in; they come out only through leases)',
      },
    ],
    load: () => import('./credentials.js'),
  },
  {
    commands: [
      {
        name: 'lease',
        aliases: ['leases'],
        term: 'lease|leases',
        description: 'Lease credentials: time-limited, audited access to a value',
      },
    ],
    load: () => import('./lease.js'),
  },
  {
    commands: [
      {
        name: 'run',
        term: 'run [options] <command...>',
        description:
          'Run a command with credentials as environment variables, its output scrubbed of their values',
      },
    ],
    load: () => import('./run.js'),
  },
  {
    commands: [
      {
        name: 'broker',
        term: 'broker [options] <command...>',
        description:
          'Run a command behind the credential broker: it holds placeholders, the broker puts values on the wire',
      },
    ],
    load: () => import('./broker.js'),
  },
  {
    commands: [{ name: 'audit', term: 'audit', description: 'Read and verify the audit log' }],
    load: () => import('./audit.js'),
  },
  {
    commands: [
      {
        name: 'tokens',
        aliases: ['token'],
        term: 'tokens|token',
        description: 'Create, look up and revoke tokens',
      },
    ],
    load: () => import('./tokens.js'),
  },
  {
    commands: [
      {
        name: 'policies',
        aliases: ['policy'],
        term: 'policies|policy',
        description: 'Policies: which credentials an identity may list, lease, reveal, ...',
      },
      {
        name: 'identities',
        aliases: ['identity'],
        term: 'identities|identity',
        description: 'Identities (human, agent, workload) and their policies',
      },
    ],
    load: () => import('./policies.js'),
  },
  {
    commands: [{ name: 'mcp', term: 'mcp', description: 'The MCP server for AI agents (Claude Code)' }],
    load: () => import('./mcp.js'),
  },
  {
    commands: [
      {
        name: 'agent',
        term: 'agent [options]',
        description:
          'Run the sidecar: lease credentials, keep them as files, wipe them when their lease ends',
      },
    ],
    load: () => import('./agent.js'),
  },
  {
    commands: [
      {
        name: 'operator',
        term: 'operator',
        description: 'The Kubernetes controller and operator tasks (key rotation)',
      },
    ],
    load: () => import('./operator.js'),
  },
  {
    commands: [
      {
        name: 'webhook',
        term: 'webhook [options]',
        description:
          'Serve the mutating webhook that injects the vault agent into pods labelled vault.ghoststack.io/inject=true',
      },
    ],
    load: () => import('./webhook.js'),
  },
];

/** The group one of whose commands (or aliases) is `name`. */
export function groupOf(name: string | undefined): CommandGroup | undefined {
  if (name === undefined) return undefined;
  return commandGroups.find((group) =>
    group.commands.some((command) => command.name === name || command.aliases?.includes(name)),
  );
}

/**
 * Adds every command as a summary only (name, aliases, description), for the top-level help
 * and for commander's "unknown command" suggestions.
 */
export function registerSummaries(program: Command): void {
  const terms = new Map<string, string>();
  for (const group of commandGroups) {
    for (const summary of group.commands) {
      program
        .command(summary.name)
        .aliases(summary.aliases ?? [])
        .description(summary.description);
      terms.set(summary.name, summary.term);
    }
  }
  const plain = new Help();
  program.configureHelp({
    subcommandTerm: (command) => terms.get(command.name()) ?? plain.subcommandTerm(command),
  });
}
