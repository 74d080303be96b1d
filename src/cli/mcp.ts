/** `vault mcp init` and `vault mcp serve`: the same as `npx @ghoststack/vault-mcp init|serve`. */
import type { Command } from 'commander';
import { configDir } from '../lib/config-dir.js';
import { connectionFrom } from '../mcp/connection.js';
import { serveHttp } from '../mcp/http.js';
import { describeInit, initProject } from '../mcp/init.js';
import { serveStdio } from '../mcp/stdio.js';
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
        'how Claude Code starts the server (default: npx -y @ghoststack/vault-mcp)',
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
      const vault = await connect(options);
      const result = await initProject({
        vault,
        projectDir: options.dir,
        configDir: configDir(process.env),
        agentName: options.name,
        ttl: options.ttl,
        ...(options.policy && { policies: options.policy }),
        ...(file !== undefined && { command: { command: file, args } }),
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
    .description("Serve the agent's tools over stdio (default) or Streamable HTTP")
    .option(
      '--http',
      'serve Streamable HTTP at http://HOST:PORT/mcp (each request brings its Vault token as bearer)',
    )
    .option('--port <n>', 'HTTP port (0 picks a free one)', '8300')
    .option('--host <host>', 'HTTP listen address', '127.0.0.1')
    .option('--addr <url>', 'server address (default $VAULT_ADDR)')
    .option('--tenant <id>', 'tenant (default $VAULT_TENANT)')
    .action(
      async (options: { http?: boolean; port: string; host: string; addr?: string; tenant?: string }) => {
        const connect = connectionFrom({
          env: process.env,
          explicit: {
            ...(options.addr && { addr: options.addr }),
            ...(options.tenant && { tenant: options.tenant }),
          },
        });
        if (!options.http) {
          await serveStdio({ connect, env: process.env, cwd: process.cwd() });
          return;
        }
        const port = Number(options.port);
        if (!Number.isInteger(port) || port < 0 || port > 65_535)
          throw new UsageError(`--port must be a port number, not "${options.port}"`);
        const server = await serveHttp({
          host: options.host,
          port,
          ...(connect.addr !== undefined && { addr: connect.addr }),
          ...(connect.tenant !== undefined && { tenant: connect.tenant }),
          env: process.env,
          cwd: process.cwd(),
          onError: (err) => process.stderr.write(`vault mcp: ${(err as Error).message}\n`),
        });
        process.stdout.write(`vault mcp listening on ${server.url}\n`);
        await new Promise<void>((resolve) => {
          process.once('SIGINT', resolve);
          process.once('SIGTERM', resolve);
        });
        await server.close();
      },
    );
}
