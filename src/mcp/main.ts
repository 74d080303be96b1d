#!/usr/bin/env node
/**
 * `vault-mcp`: the MCP server's own entry point (the npm package's bin). Parses argv and the
 * environment once, then serves over stdio (default), serves Streamable HTTP, or runs init.
 */
import { parseArgs } from 'node:util';
import { configDir } from '../lib/config-dir.js';
import { Vault } from '../sdk/index.js';
import { connectionFrom } from './connection.js';
import { serveHttp } from './http.js';
import { describeInit, initProject } from './init.js';
import { mcpServerVersion } from './server.js';
import { serveStdio } from './stdio.js';

const usage = `Usage:
  vault-mcp [serve]                       serve one agent over stdio (Claude Code starts it this way)
  vault-mcp serve --http [--port N] [--host H]
                                          serve Streamable HTTP at http://H:N/mcp; each request
                                          authenticates with its agent's Vault token as bearer
  vault-mcp init [--name NAME] [--ttl 8h] [--policy P]... [--dir DIR] [--command "CMD ARGS"]
                                          write .mcp.json for Claude Code and mint an agent token

Environment: VAULT_ADDR (default http://127.0.0.1:8200), VAULT_TENANT, and VAULT_TOKEN or
VAULT_TOKEN_FILE (the agent's token when serving; your own token for init).`;

const write = (text: string) => process.stderr.write(`${text}\n`);

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      http: { type: 'boolean' },
      port: { type: 'string' },
      host: { type: 'string' },
      name: { type: 'string' },
      ttl: { type: 'string' },
      policy: { type: 'string', multiple: true },
      dir: { type: 'string' },
      command: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean' },
    },
  });
  if (values.help) {
    process.stdout.write(`${usage}\n`);
    return 0;
  }
  if (values.version) {
    process.stdout.write(`${mcpServerVersion}\n`);
    return 0;
  }
  const command = positionals[0] ?? 'serve';
  const env = process.env;
  const connect = connectionFrom({ env });

  if (command === 'init') {
    const [file, ...args] = (values.command ?? '').split(/\s+/).filter(Boolean);
    const vault = await Vault.connect(connect);
    const result = await initProject({
      vault,
      projectDir: values.dir ?? process.cwd(),
      configDir: configDir(env),
      ...(values.name !== undefined && { agentName: values.name }),
      ...(values.ttl !== undefined && { ttl: values.ttl }),
      ...(values.policy !== undefined && { policies: values.policy }),
      ...(file !== undefined && { command: { command: file, args } }),
    });
    process.stdout.write(`${describeInit(result)}\n`);
    return 0;
  }
  if (command !== 'serve') {
    write(`unknown command "${command}"\n\n${usage}`);
    return 1;
  }
  if (values.http) {
    const port = Number(values.port ?? '8300');
    if (!Number.isInteger(port) || port < 0 || port > 65_535) {
      write(`--port must be a port number, not "${values.port}"`);
      return 1;
    }
    const server = await serveHttp({
      host: values.host ?? '127.0.0.1',
      port,
      ...(connect.addr !== undefined && { addr: connect.addr }),
      ...(connect.tenant !== undefined && { tenant: connect.tenant }),
      env,
      cwd: process.cwd(),
      onError: (err) => write(`vault-mcp: ${(err as Error).message}`),
    });
    process.stdout.write(`vault-mcp listening on ${server.url}\n`);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    await server.close();
    return 0;
  }
  if (!connect.token) {
    write('vault-mcp: no token; set VAULT_TOKEN_FILE or VAULT_TOKEN (run `vault mcp init` in your project)');
  }
  await serveStdio({ connect, env, cwd: process.cwd() });
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    write(`vault-mcp: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
