/**
 * Child side of as-user.ts: become the identity, then run one exported function. Dropping
 * privileges happens before the module under test is imported, so nothing runs as root.
 */
import { pathToFileURL } from 'node:url';

const [whoJson, module, exportName, argsJson] = process.argv.slice(2) as [string, string, string, string];
const who = JSON.parse(whoJson) as { uid: number; gid: number; groups?: number[] };
const { setgroups, setgid, setuid, getuid, geteuid } = process;
if (!setgroups || !setgid || !setuid || !getuid || !geteuid) throw new Error('needs a POSIX system');
setgroups(who.groups ?? []);
setgid(who.gid);
setuid(who.uid);
if (getuid() === 0 || geteuid() === 0) throw new Error('still root');

const loaded = (await import(pathToFileURL(module).href)) as Record<string, (...args: unknown[]) => unknown>;
const fn = loaded[exportName];
if (typeof fn !== 'function') throw new Error(`${module} has no export ${exportName}`);
const result = await fn(...(JSON.parse(argsJson) as unknown[]));
process.stdout.write(JSON.stringify(result ?? null));
