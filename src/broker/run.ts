/**
 * Runs one command behind a broker: the command gets placeholders and the proxy, never a
 * value or a Vault token; its output is still scrubbed of the values (a second line of
 * defence: they should never reach it). Shared by `vault broker` and the MCP tool.
 */
import { type RunScrubbedOptions, type RunScrubbedResult, runScrubbed } from '../lib/run-scrubbed.js';
import { type Broker, childEnvironment, type StartBrokerOptions, startBroker } from './broker.js';

export interface RunBrokeredOptions
  extends StartBrokerOptions,
    Pick<
      RunScrubbedOptions,
      | 'cwd'
      | 'timeoutMs'
      | 'maxOutputChars'
      | 'inheritStdin'
      | 'detached'
      | 'onStdout'
      | 'onStderr'
      | 'signal'
    > {
  file: string;
  args: string[];
  /** The environment the command inherits; Vault tokens and proxy bypasses are removed. */
  baseEnv: Record<string, string | undefined>;
  /** More values to scrub from the output (the tokens of whoever runs it). */
  scrub?: Array<{ name: string; value: string }>;
  /** Called once the broker listens and before the command starts (tests watch the process). */
  onStart?: (broker: Broker) => void;
}

export interface RunBrokeredResult extends RunScrubbedResult {
  brokered: Array<{ credential: string; env: string; leaseId: string; version: number; hosts: string[] }>;
}

export async function runBrokered(options: RunBrokeredOptions): Promise<RunBrokeredResult> {
  const broker = await startBroker(options);
  try {
    options.onStart?.(broker);
    const env = childEnvironment(options.baseEnv, broker);
    const result = await runScrubbed({
      file: options.file,
      args: options.args,
      env,
      secrets: [...broker.secrets(), ...(options.scrub ?? []).filter((s) => s.value !== '')],
      ...(options.cwd !== undefined && { cwd: options.cwd }),
      ...(options.timeoutMs !== undefined && { timeoutMs: options.timeoutMs }),
      ...(options.maxOutputChars !== undefined && { maxOutputChars: options.maxOutputChars }),
      ...(options.inheritStdin !== undefined && { inheritStdin: options.inheritStdin }),
      ...(options.detached !== undefined && { detached: options.detached }),
      ...(options.onStdout && { onStdout: options.onStdout }),
      ...(options.onStderr && { onStderr: options.onStderr }),
      ...(options.signal && { signal: options.signal }),
    });
    return {
      ...result,
      brokered: broker.credentials.map(({ credential, env: name, leaseId, version, hosts }) => ({
        credential,
        env: name,
        leaseId,
        version,
        hosts,
      })),
    };
  } finally {
    await broker.close();
  }
}
