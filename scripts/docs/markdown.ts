/**
 * Small helpers for writing Markdown that VitePress renders as written: table cells escape
 * `|`, and text outside code escapes what Vue would read as a tag or an interpolation.
 */

/**
 * Text for a table cell or a paragraph: no raw HTML, no Vue interpolation, no line breaks.
 * Code spans in it are kept as they are (only `|` is escaped there, for tables).
 */
export function text(value: string): string {
  const prose = (part: string) =>
    part
      .replace(/\\/g, '\\\\')
      .replace(/\|/g, '\\|')
      .replace(/</g, '&lt;')
      .replace(/>/g, '&gt;')
      .replace(/\{\{/g, '&#123;&#123;');
  return value
    .replace(/\s*\n\s*/g, ' ')
    .split(/(`+[^`]*?`+)/)
    .map((part, index) => (index % 2 === 1 ? part.replace(/\|/g, '\\|') : prose(part)))
    .join('');
}

/** An inline code span that survives any backticks inside the value. */
export function code(value: string): string {
  const flat = value.replace(/\s*\n\s*/g, ' ').replace(/\|/g, '\\|');
  const fence = flat.includes('`') ? '`` ' : '`';
  const close = flat.includes('`') ? ' ``' : '`';
  return `${fence}${flat}${close}`;
}

export function table(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

/** The first lines of every generated page: what it comes from and how to refresh it. */
export function generatedNotice(source: string): string {
  return `---\npageClass: reference-page\n---\n\n<!-- Generated from ${source} by \`npm run docs:reference\`; do not edit. -->`;
}

/** A description followed by its limits, as sentences: "The key. Max length 253; default `32`." */
export function describeField(description: string, constraints: string[] = []): string {
  const sentence = (value: string) => {
    const trimmed = value.trim();
    if (!trimmed) return '';
    const capital = trimmed[0]!.toUpperCase() + trimmed.slice(1);
    return /[.!?)]$/.test(capital) ? capital : `${capital}.`;
  };
  return [sentence(description), sentence(constraints.join('; '))].filter(Boolean).join(' ');
}

/** A table of schema fields; a `variant` column appears when the schema has unions. */
export function fieldTable(
  rows: Array<{
    path: string;
    type: string;
    required: boolean;
    description: string;
    constraints: string[];
    variant?: string;
  }>,
  first = 'field',
): string {
  const variants = rows.some((row) => row.variant);
  return table(
    [first, 'type', 'required', ...(variants ? ['variant'] : []), 'description'],
    rows.map((row) => [
      code(row.path),
      code(row.type),
      row.required ? 'yes' : '',
      ...(variants ? [row.variant ? text(row.variant) : ''] : []),
      text(describeField(row.description, row.constraints)),
    ]),
  );
}
