/**
 * `vault mcp init` and `vault mcp serve`: the same as `npx @ghoststack/vault-mcp init|serve`,
 * except that `vault mcp init` has Claude Code start this very CLI (`vault mcp serve`), which
 * is installed, rather than a package it would have to fetch.
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { configDir } from '../lib/config-dir.js';
import { describeInit, initProject } from '../mcp/init.js';
import { ServeError, type ServeFlags, serve, serveFlagHelp } from '../mcp/serve-command.js';
import { type CommonOptions, collect, connect, withCommon } from './context.js';
import { UsageError } from './exit-codes.js';
import { printJson } from './output.js';

export function register(program: Command): void {
  const group = program.command('mcp').description('The MCP server for AI agents (Claude Code)');

  withCommon(
    group
      .command('init')
      .description(
        'Write .mcp.json for Claude Code in this project and mint a short-lived agent token for it',
      )
      .option('--name <agent>', 'the agent identity name', 'claude-code')
      .option('--ttl <duration>', 'token lifetime', '8h')
      .option(
        '--policy <name>',
        'a policy for the token (repeatable; the agent identity may also carry some)',
        collect,
      )
      .option('--dir <path>', 'the project directory', '.')
      .option(
        '--command <command line>',
        'how Claude Code starts the server (default: this CLI, as NODE /path/to/vault mcp serve)',
      ),
  ).action(
    async (
      options: CommonOptions & {
        name: string;
        ttl: string;
        policy?: string[];
        dir: string;
        command?: string;
      },
    ) => {
      const [file, ...args] = (options.command ?? '').split(/\s+/).filter(Boolean);
      // Absolute paths: Claude Code may not have this shell's PATH or aliases.
      const command = file
        ? { command: file, args }
        : { command: process.execPath, args: [resolve(process.argv[1]!), 'mcp', 'serve'] };
      const vault = await connect(options);
      const result = await initProject({
        vault,
        projectDir: options.dir,
        configDir: configDir(process.env),
        agentName: options.name,
        ttl: options.ttl,
        ...(options.policy && { policies: options.policy }),
        command,
        ...(process.env.VAULT_CACERT && { caCertFile: resolve(process.env.VAULT_CACERT) }),
      });
      if (options.json) {
        return printJson({
          mcpJson: result.mcpJsonPath,
          merged: result.merged,
          tokenFile: result.tokenFile,
          accessor: result.token.accessor,
          expiresAt: result.token.expiresAt.toISOString(),
          ...(result.replacedAccessor && { replacedAccessor: result.replacedAccessor }),
        });
      }
      process.stdout.write(`${describeInit(result)}\n`);
    },
  );

  group
    .command('serve')
    .description("Serve the agent's tools over stdio (default) or Streamable HTTP, as the agent")
    .option(
      '--http',
      'serve Streamable HTTP at http://HOST:PORT/mcp (each request brings its agent token as bearer)',
    )
    .option('--port <n>', 'HTTP port (0 picks a free one)', '8300')
    .option('--host <host>', 'HTTP listen address', '127.0.0.1')
    .option('--addr <url>', 'server address (default $VAULT_ADDR)')
    .option('--tenant <id>', 'tenant (default $VAULT_TENANT)')
    .option('--token-file <path>', serveFlagHelp.tokenFile)
    .option('--token-from-env', serveFlagHelp.tokenFromEnv)
    .option('--allow-run-on-host', serveFlagHelp.allowRunOnHost)
    .option('--tls-cert <file>', serveFlagHelp.tls)
    .option('--tls-key <file>', 'the key of --tls-cert')
    .option('--allowed-host <name>', serveFlagHelp.allowedHost, collect)
    .option('--allowed-origin <origin>', serveFlagHelp.allowedOrigin, collect)
    .action(async (options: ServeFlags) => {
      try {
        await serve(options, {
          env: process.env,
          cwd: process.cwd(),
          announce: (line) => process.stdout.write(`vault mcp ${line}\n`),
          onError: (err) => process.stderr.write(`vault mcp: ${(err as Error).message}\n`),
          stopped: () =>
            new Promise<void>((resolve) => {
              process.once('SIGINT', resolve);
              process.once('SIGTERM', resolve);
            }),
        });
      } catch (err) {
        if (err instanceof ServeError) throw new UsageError(err.message);
        throw err;
      }
    });
}
