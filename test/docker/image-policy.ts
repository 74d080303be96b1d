/**
 * What the project's image must be (issue 2): multi-stage, one base family for the build
 * and the runtime (better-sqlite3's native addon), pinned tags, a non-root user, only the
 * compiled output and production dependencies in the runtime stage, the one start command
 * every role shares, and state only under the /data volume.
 */
import { copyArgs, type Dockerfile, execForm, keyValues, type Stage } from './dockerfile.js';

export const ENTRYPOINT = ['node', '/app/bin/vault.js'];
export const RUNTIME_CONTENTS = ['dist', 'node_modules', 'package.json', 'bin'];

/** glibc distribution or musl, from an image reference such as node:22-bookworm-slim. */
export function baseFamily(image: string): string | undefined {
  const tag = image.split('@')[0]!.split(':')[1] ?? '';
  const name = image.split(':')[0]!;
  if (/alpine/.test(tag)) return 'musl';
  if (/distroless\/nodejs\d+-debian12/.test(name) || /bookworm/.test(tag)) return 'glibc-debian12';
  if (/distroless\/nodejs\d+-debian13/.test(name) || /trixie/.test(tag)) return 'glibc-debian13';
  if (/bullseye/.test(tag)) return 'glibc-debian11';
  return undefined;
}

const all = (stage: Stage, keyword: string) => stage.instructions.filter((i) => i.keyword === keyword);

/** Every way the Dockerfile breaks the policy; empty when it conforms. */
export function imageProblems(dockerfile: Dockerfile, dockerignore?: string): string[] {
  const problems: string[] = [];
  const { stages } = dockerfile;
  if (stages.length < 2) return ['the image must be built in (at least) a build and a runtime stage'];
  const runtime = stages.at(-1)!;
  const build = stages.find((stage) => all(stage, 'RUN').some((run) => /npm ci\b/.test(run.args)));

  for (const stage of stages) {
    const [, tag] = stage.from.split('@')[0]!.split(':');
    if (!tag) problems.push(`stage ${stage.name}: base image "${stage.from}" has no tag (that means latest)`);
    else if (tag === 'latest')
      problems.push(`stage ${stage.name}: base image "${stage.from}" uses the latest tag`);
  }

  if (!build) problems.push('no build stage runs `npm ci`');
  else {
    const commands = all(build, 'RUN')
      .map((run) => run.args)
      .join('\n');
    if (!/npm run build\b/.test(commands)) problems.push('the build stage does not run `npm run build`');
    if (!/npm prune --omit=dev\b/.test(commands)) {
      problems.push('the build stage does not prune dev dependencies (`npm prune --omit=dev`)');
    }
    const buildFamily = baseFamily(build.from);
    const runtimeFamily = baseFamily(runtime.from);
    if (!buildFamily || !runtimeFamily) {
      problems.push(`cannot tell the libc of "${build.from}" / "${runtime.from}"`);
    } else if (buildFamily !== runtimeFamily) {
      problems.push(
        `build (${buildFamily}) and runtime (${runtimeFamily}) differ: better-sqlite3's addon would not load`,
      );
    }
    if (dockerignore !== undefined) {
      const allowed = dockerignore.split(/\r?\n/).map((line) => line.trim());
      for (const copy of all(build, 'COPY')) {
        const { flags, sources } = copyArgs(copy.args);
        if (flags.from) continue;
        for (const source of sources) {
          const path = source.replace(/^\.\//, '').replace(/\/$/, '');
          if (allowed.includes('*') && !allowed.includes(`!${path}`) && !allowed.includes(`!${path}/`)) {
            problems.push(`.dockerignore leaves ${path} out of the build context, but the build copies it`);
          }
        }
      }
    }
  }

  const users = all(runtime, 'USER');
  const user = users.at(-1)?.args.split(':')[0];
  if (!user) problems.push('the runtime stage has no USER (it would run as root)');
  else if (user === 'root' || user === '0') problems.push(`the runtime stage runs as ${user}`);
  else if (!/^\d+$/.test(user)) problems.push(`USER ${user} should be numeric so runAsNonRoot can verify it`);

  const workdir = all(runtime, 'WORKDIR').at(-1)?.args;
  if (workdir !== '/app') problems.push(`the runtime WORKDIR is ${workdir ?? 'unset'}, expected /app`);

  const stageNames = new Set(stages.slice(0, -1).map((stage) => stage.name));
  for (const copy of [...all(runtime, 'COPY'), ...all(runtime, 'ADD')]) {
    const { flags, sources } = copyArgs(copy.args);
    if (copy.keyword === 'ADD') problems.push(`line ${copy.line}: use COPY, not ADD, in the runtime stage`);
    if (!flags.from || !stageNames.has(flags.from)) {
      problems.push(
        `line ${copy.line}: the runtime stage copies from the build context, not from a build stage`,
      );
      continue;
    }
    for (const source of sources) {
      const top = source
        .replace(/^\/src\//, '')
        .replace(/^\.\//, '')
        .split('/')[0]!;
      if (!RUNTIME_CONTENTS.includes(top))
        problems.push(`line ${copy.line}: ${source} does not belong in the image`);
    }
  }

  const env = Object.assign({}, ...all(runtime, 'ENV').map((i) => keyValues(i.args))) as Record<
    string,
    string
  >;
  for (const name of Object.keys(env)) {
    if (/ROOT_KEY$|PASSWORD|TOKEN/.test(name))
      problems.push(`ENV ${name}: secrets do not belong in the image`);
  }
  if (env.VAULT_DATA_DIR !== '/data') problems.push('VAULT_DATA_DIR is not /data');
  const volumes = all(runtime, 'VOLUME').flatMap((i) =>
    i.args.startsWith('[') ? (JSON.parse(i.args) as string[]) : i.args.split(/\s+/),
  );
  if (!volumes.includes('/data')) problems.push('/data is not declared as a VOLUME');

  const entrypoint = all(runtime, 'ENTRYPOINT').at(-1);
  const cmd = all(runtime, 'CMD').at(-1);
  if (!entrypoint || !execForm(entrypoint.args).exec) problems.push('ENTRYPOINT must be in exec form');
  else if (JSON.stringify(execForm(entrypoint.args).argv) !== JSON.stringify(ENTRYPOINT)) {
    problems.push(`ENTRYPOINT is ${entrypoint.args}, expected ${JSON.stringify(ENTRYPOINT)}`);
  }
  if (!cmd || JSON.stringify(execForm(cmd.args).argv) !== '["server"]')
    problems.push('CMD must be ["server"]');
  return problems;
}

/** The runtime stage's environment and start command, as `docker run IMAGE ARGS...` would use them. */
export function startCommand(dockerfile: Dockerfile, args: string[] = []) {
  const runtime = dockerfile.stages.at(-1)!;
  const env = Object.assign({}, ...all(runtime, 'ENV').map((i) => keyValues(i.args))) as Record<
    string,
    string
  >;
  const entrypoint = execForm(all(runtime, 'ENTRYPOINT').at(-1)!.args).argv;
  const cmd = execForm(all(runtime, 'CMD').at(-1)!.args).argv;
  return { env, argv: [...entrypoint, ...(args.length > 0 ? args : cmd)] };
}
