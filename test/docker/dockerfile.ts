/**
 * A small Dockerfile reader for tests: enough of the syntax (comments, parser directives,
 * line continuations, global ARGs, exec and shell forms) to check what an image build and
 * its start command would do, where no Docker engine can run them.
 */

export interface Instruction {
  keyword: string;
  /** Everything after the keyword, continuations joined with a space. */
  args: string;
  line: number;
}

export interface Stage {
  /** The image reference after FROM, with global ARGs substituted. */
  from: string;
  /** `FROM x AS name`, else the stage index as a string. */
  name: string;
  instructions: Instruction[];
}

export interface Dockerfile {
  /** ARGs declared before the first FROM, with their defaults. */
  globalArgs: Record<string, string | undefined>;
  stages: Stage[];
}

export function parseDockerfile(text: string): Dockerfile {
  const instructions: Instruction[] = [];
  let pending = '';
  let startLine = 0;
  const lines = text.split(/\r?\n/);
  for (const [index, raw] of lines.entries()) {
    const trimmed = raw.trim();
    if (pending === '' && (trimmed === '' || trimmed.startsWith('#'))) continue;
    // Comment lines inside a continued instruction are dropped, as docker does.
    if (pending !== '' && trimmed.startsWith('#')) continue;
    if (pending === '') startLine = index + 1;
    const continued = trimmed.endsWith('\\');
    pending += `${pending ? ' ' : ''}${continued ? trimmed.slice(0, -1).trim() : trimmed}`;
    if (continued) continue;
    const match = /^(\S+)\s*(.*)$/s.exec(pending)!;
    instructions.push({ keyword: match[1]!.toUpperCase(), args: match[2]!.trim(), line: startLine });
    pending = '';
  }
  if (pending !== '') throw new Error(`Dockerfile ends inside a continued instruction (line ${startLine})`);

  const globalArgs: Record<string, string | undefined> = {};
  const stages: Stage[] = [];
  for (const instruction of instructions) {
    if (instruction.keyword === 'FROM') {
      const parts = instruction.args.split(/\s+/).filter((part) => !part.startsWith('--'));
      const from = substitute(parts[0] ?? '', globalArgs);
      const name = parts[1]?.toUpperCase() === 'AS' ? parts[2]! : String(stages.length);
      stages.push({ from, name, instructions: [] });
    } else if (stages.length === 0) {
      if (instruction.keyword !== 'ARG') {
        throw new Error(`only ARG may come before the first FROM (line ${instruction.line})`);
      }
      const [name, value] = splitAssignment(instruction.args);
      globalArgs[name] = value;
    } else {
      stages.at(-1)!.instructions.push(instruction);
    }
  }
  return { globalArgs, stages };
}

/** `["a", "b"]` → ['a', 'b']; the shell form is returned as ['/bin/sh', '-c', text]. */
export function execForm(args: string): { exec: boolean; argv: string[] } {
  if (args.startsWith('[')) return { exec: true, argv: JSON.parse(args) as string[] };
  return { exec: false, argv: ['/bin/sh', '-c', args] };
}

/** `A=1 B="two words"` or the legacy `A 1` form of ENV and LABEL. */
export function keyValues(args: string): Record<string, string> {
  const result: Record<string, string> = {};
  if (!/^[^\s=]+=/.test(args)) {
    const [key, ...rest] = args.split(/\s+/);
    result[key!] = rest.join(' ');
    return result;
  }
  for (const match of args.matchAll(/([^\s=]+)=("(?:[^"\\]|\\.)*"|\S*)/g)) {
    const value = match[2]!;
    result[match[1]!] = value.startsWith('"') ? (JSON.parse(value) as string) : value;
  }
  return result;
}

/** The flags (`--from=build`) and paths of a COPY or ADD. */
export function copyArgs(args: string): { flags: Record<string, string>; sources: string[]; dest: string } {
  const flags: Record<string, string> = {};
  const words = args.startsWith('[') ? (JSON.parse(args) as string[]) : args.split(/\s+/);
  const paths: string[] = [];
  for (const word of words) {
    const flag = /^--([a-z-]+)(?:=(.*))?$/.exec(word);
    if (flag && paths.length === 0) flags[flag[1]!] = flag[2] ?? 'true';
    else paths.push(word);
  }
  return { flags, sources: paths.slice(0, -1), dest: paths.at(-1) ?? '' };
}

function splitAssignment(args: string): [string, string | undefined] {
  const index = args.indexOf('=');
  if (index < 0) return [args.trim(), undefined];
  return [
    args.slice(0, index).trim(),
    args
      .slice(index + 1)
      .trim()
      .replace(/^"(.*)"$/, '$1'),
  ];
}

function substitute(text: string, args: Record<string, string | undefined>): string {
  return text.replace(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g, (_all, name: string) => args[name] ?? '');
}
