import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const vaultBin = fileURLToPath(new URL('../../bin/vault.js', import.meta.url));

export interface WebhookProcess {
  child: ChildProcess;
  /** Everything it printed so far (stdout and stderr). */
  output(): string;
  stop(): Promise<void>;
}

/**
 * Runs `vault webhook` as a process against a test control plane: it serves on 127.0.0.1,
 * installs its MutatingWebhookConfiguration (clientConfig.url) and keeps its certificate in
 * a Secret of `namespace`. Resolves once it listens.
 */
export async function startWebhookProcess(options: {
  kubeconfigPath: string;
  namespace?: string;
  agentImage?: string;
  /** The Vault address injected agents are given. */
  vaultAddr?: string;
  extraArgs?: string[];
  startTimeoutMs?: number;
}): Promise<WebhookProcess> {
  let output = '';
  const child = spawn(
    process.execPath,
    [
      vaultBin,
      'webhook',
      '--listen',
      '127.0.0.1:0',
      '--namespace',
      options.namespace ?? 'vault-system',
      '--agent-image',
      options.agentImage ?? 'ghcr.io/ghoststack/vault:test',
      '--vault-addr',
      options.vaultAddr ?? 'http://vault.vault-system.svc:8200',
      '--ip-address',
      '127.0.0.1',
      '--install',
      '--kubeconfig',
      options.kubeconfigPath,
      '--log-level',
      'warn',
      ...(options.extraArgs ?? []),
    ],
    {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, VAULT_ADDR: '', VAULT_TOKEN: '' },
    },
  );
  const collect = (chunk: string) => {
    output += chunk;
  };
  child.stdout?.setEncoding('utf8').on('data', collect);
  child.stderr?.setEncoding('utf8').on('data', collect);
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };
  const deadline = Date.now() + (options.startTimeoutMs ?? 60_000);
  while (!/webhook listening on https:/.test(output)) {
    if (child.exitCode !== null) throw new Error(`the webhook exited:\n${output}`);
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`timed out waiting for the webhook to listen:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { child, output: () => output, stop };
}
