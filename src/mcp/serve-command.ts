/**
 * `vault mcp serve` and `vault-mcp serve` share this: which token the server acts with, which
 * transport, and the checks made before anything is served. Both entry points parse their
 * flags into {@link ServeFlags} and call {@link serve}.
 */
import { connectionFrom, missingTokenMessage } from './connection.js';
import { HttpServeError, serveHttp } from './http.js';
import { ServingIdentityError } from './serving-identity.js';
import { serveStdio } from './stdio.js';

export interface ServeFlags {
  http?: boolean;
  port?: string;
  host?: string;
  addr?: string;
  tenant?: string;
  tokenFile?: string;
  tokenFromEnv?: boolean;
  allowRunOnHost?: boolean;
  tlsCert?: string;
  tlsKey?: string;
  allowedHost?: string[];
  allowedOrigin?: string[];
}

/** A problem with how the server was started: printed as is, exit code 1. */
export class ServeError extends Error {
  override name = 'ServeError';
}

export const serveFlagHelp = {
  tokenFile: 'the agent token to serve with (default $VAULT_TOKEN_FILE, as `vault mcp init` writes it)',
  tokenFromEnv:
    'serve with $VAULT_TOKEN (ignored otherwise: Claude Code passes your shell environment, and your token, on)',
  allowRunOnHost:
    'over HTTP, offer run_with_credentials: remote agents then run shell commands on THIS host (off by default)',
  tls: 'serve HTTPS with this certificate and key (PEM files); required to listen beyond loopback',
  allowedHost:
    'a host name clients may reach the HTTP server by, besides its address and loopback (repeatable)',
  allowedOrigin: 'a browser Origin allowed to call the HTTP server (repeatable; none by default)',
};

export async function serve(
  flags: ServeFlags,
  io: {
    env: Record<string, string | undefined>;
    cwd: string;
    /** Where the HTTP server announces its URL. */
    announce: (line: string) => void;
    onError: (err: unknown) => void;
    /** Resolves when the process is asked to stop (SIGINT, SIGTERM). */
    stopped: () => Promise<void>;
  },
): Promise<void> {
  const explicit = {
    ...(flags.addr && { addr: flags.addr }),
    ...(flags.tenant && { tenant: flags.tenant }),
  };
  if (!flags.http) {
    const connection = connectionFrom({
      env: io.env,
      explicit: { ...explicit, ...(flags.tokenFile && { tokenFile: flags.tokenFile }) },
      ambientToken: flags.tokenFromEnv ?? false,
    });
    const { token } = connection;
    if (!token) throw new ServeError(missingTokenMessage('vault mcp serve', connection));
    try {
      await serveStdio({ connect: { ...connection, token }, env: io.env, cwd: io.cwd });
    } catch (err) {
      if (err instanceof ServingIdentityError) throw new ServeError(err.message);
      throw err;
    }
    return;
  }
  const port = Number(flags.port ?? '8300');
  if (!Number.isInteger(port) || port < 0 || port > 65_535)
    throw new ServeError(`--port must be a port number, not "${flags.port}"`);
  if ((flags.tlsCert === undefined) !== (flags.tlsKey === undefined))
    throw new ServeError('--tls-cert and --tls-key go together');
  // Over HTTP each request brings its agent's token; the server holds none of its own.
  const connection = connectionFrom({ env: io.env, explicit, ambientToken: false });
  let server: Awaited<ReturnType<typeof serveHttp>>;
  try {
    server = await serveHttp({
      host: flags.host ?? '127.0.0.1',
      port,
      ...(connection.addr !== undefined && { addr: connection.addr }),
      ...(connection.tenant !== undefined && { tenant: connection.tenant }),
      env: io.env,
      cwd: io.cwd,
      allowRunOnHost: flags.allowRunOnHost ?? false,
      ...(flags.tlsCert && flags.tlsKey && { tls: { certFile: flags.tlsCert, keyFile: flags.tlsKey } }),
      ...(flags.allowedHost && { allowedHosts: flags.allowedHost }),
      ...(flags.allowedOrigin && { allowedOrigins: flags.allowedOrigin }),
      onError: io.onError,
    });
  } catch (err) {
    if (err instanceof HttpServeError) throw new ServeError(err.message);
    throw err;
  }
  io.announce(
    `listening on ${server.url}${flags.allowRunOnHost ? ' (run_with_credentials runs commands on this host)' : ''}`,
  );
  await io.stopped();
  await server.close();
}
