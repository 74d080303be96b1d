/**
 * Runs code as a non-root user, the way the kubelet runs the injected agent and the app: a
 * child process with its own uid, gid and supplementary groups (an fsGroup), and no
 * capabilities (a non-root uid has none). Tests run as root, so without this a permission
 * check can never fail.
 */
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const agentUid = 65532;
export const appUid = 1000;

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const runner = fileURLToPath(new URL('./as-user-runner.ts', import.meta.url));

export const canSwitchUser = (): boolean => process.getuid?.() === 0;

export interface Identity {
  uid: number;
  gid: number;
  /** Supplementary groups, like a pod's fsGroup and supplementalGroups. */
  groups?: number[];
}

/** A fresh directory on /dev/shm (a tmpfs, already mounted) owned like a pod's emptyDir. */
export function podVolume(options: { fsGroup?: number } = {}): string {
  const parent = '/dev/shm';
  const dir = mkdtempSync(join(parent, 'vault-volume-'));
  // The kubelet creates an emptyDir 0777; with an fsGroup it is group-owned and setgid.
  if (options.fsGroup !== undefined) {
    chownSync(dir, 0, options.fsGroup);
    chmodSync(dir, 0o2777);
  } else chmodSync(dir, 0o777);
  return dir;
}

/** A directory nobody else can write, owned by `owner`. */
export function ownedDirectory(parent: string, name: string, owner: Identity): string {
  const dir = join(parent, name);
  mkdirSync(dir, { mode: 0o700 });
  chownSync(dir, owner.uid, owner.gid);
  return dir;
}

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `node as-user-runner.ts <module> <export> <json args>` as `who`: the runner drops to
 * the identity (groups first, then gid, then uid) before it imports anything, then calls the
 * export with the arguments and prints its JSON result.
 */
export function runAs(who: Identity, module: string, exportName: string, args: unknown[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', runner, JSON.stringify(who), module, exportName, JSON.stringify(args)],
      { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '' } },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      stdout += c;
    });
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      stderr += c;
    });
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Reads a file as `who`: its content, or the error code (EACCES) the kernel gave. */
export async function readAs(who: Identity, path: string): Promise<{ content?: string; error?: string }> {
  const run = await runAs(who, fileURLToPath(new URL('./as-user-ops.ts', import.meta.url)), 'read', [path]);
  if (run.code !== 0) throw new Error(`reading as uid ${who.uid} failed to run:\n${run.stderr}`);
  return JSON.parse(run.stdout) as { content?: string; error?: string };
}
