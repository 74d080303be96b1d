#!/usr/bin/env node
/**
 * `vault-mcp`: the MCP server's own entry point (the npm package's bin). Parses argv and the
 * environment once, then serves over stdio (default), serves Streamable HTTP, or runs init.
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { configDir } from '../lib/config-dir.js';
import { Vault } from '../sdk/index.js';
import { connectionFrom } from './connection.js';
import { describeInit, initProject } from './init.js';
import { ServeError, serve } from './serve-command.js';
import { mcpServerVersion } from './server.js';

const usage = `Usage:
  vault-mcp [serve] [--token-file F] [--token-from-env]
                                          serve one agent over stdio (Claude Code starts it this way)
  vault-mcp serve --http [--port N] [--host H] [--tls-cert F --tls-key F] [--allow-run-on-host]
                  [--allowed-host NAME]... [--allowed-origin ORIGIN]...
                                          serve Streamable HTTP at http://H:N/mcp; each request
                                          authenticates with its agent's Vault token as bearer;
                                          run_with_credentials only with --allow-run-on-host
  vault-mcp init [--name NAME] [--ttl 8h] [--policy P]... [--dir DIR] [--command "CMD ARGS"]
                                          write .mcp.json for Claude Code and mint an agent token

Environment: VAULT_ADDR (default http://127.0.0.1:8200), VAULT_TENANT; VAULT_TOKEN_FILE (the
agent's token when serving; VAULT_TOKEN only with --token-from-env, and never a person's, root
or system token), VAULT_TOKEN or VAULT_TOKEN_FILE (your own token for init).`;

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
      'token-file': { type: 'string' },
      'token-from-env': { type: 'boolean' },
      'allow-run-on-host': { type: 'boolean' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'allowed-host': { type: 'string', multiple: true },
      'allowed-origin': { type: 'string', multiple: true },
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
      ...(env.VAULT_CACERT && { caCertFile: resolve(env.VAULT_CACERT) }),
    });
    process.stdout.write(`${describeInit(result)}\n`);
    return 0;
  }
  if (command !== 'serve') {
    write(`unknown command "${command}"\n\n${usage}`);
    return 1;
  }
  try {
    await serve(
      {
        ...(values.http !== undefined && { http: values.http }),
        ...(values.port !== undefined && { port: values.port }),
        ...(values.host !== undefined && { host: values.host }),
        ...(values['token-file'] !== undefined && { tokenFile: values['token-file'] }),
        ...(values['token-from-env'] !== undefined && { tokenFromEnv: values['token-from-env'] }),
        ...(values['allow-run-on-host'] !== undefined && { allowRunOnHost: values['allow-run-on-host'] }),
        ...(values['tls-cert'] !== undefined && { tlsCert: values['tls-cert'] }),
        ...(values['tls-key'] !== undefined && { tlsKey: values['tls-key'] }),
        ...(values['allowed-host'] !== undefined && { allowedHost: values['allowed-host'] }),
        ...(values['allowed-origin'] !== undefined && { allowedOrigin: values['allowed-origin'] }),
      },
      {
        env,
        cwd: process.cwd(),
        announce: (line) => process.stdout.write(`vault-mcp ${line}\n`),
        onError: (err) => write(`vault-mcp: ${(err as Error).message}`),
        stopped: () =>
          new Promise<void>((resolve) => {
            process.once('SIGINT', resolve);
            process.once('SIGTERM', resolve);
          }),
      },
    );
  } catch (err) {
    if (err instanceof ServeError) {
      write(`vault-mcp: ${err.message}`);
      return 1;
    }
    throw err;
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    write(`vault-mcp: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
