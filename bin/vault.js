#!/usr/bin/env node
// Runs the compiled CLI when it exists (the container image), else the TypeScript source.
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const compiled = `${here}../dist/cli/main.js`;
if (existsSync(compiled)) {
  await import(pathToFileURL(compiled).href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(pathToFileURL(`${here}../src/cli/main.ts`).href);
}
