import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  annotationTable,
  annotationTableMarkdown,
  fileAnnotationPrefixes,
  injectLabel,
  podAnnotations,
  secretImportForAnnotation,
  secretImportLabel,
} from '../../src/webhook/annotations.js';

const docPath = new URL('../../docs/kubernetes/injection.md', import.meta.url);
const begin = '<!-- annotation-table:begin (generated from src/webhook/annotations.ts) -->';
const end = '<!-- annotation-table:end -->';

describe('the annotation contract and its documentation', () => {
  it('documents every key the code defines, exactly once', () => {
    const keys = [
      injectLabel,
      ...Object.values(fileAnnotationPrefixes).map((p) => `${p}<file>`),
      ...Object.values(podAnnotations),
      secretImportLabel,
      secretImportForAnnotation,
    ].sort();
    expect(annotationTable.map((row) => row.key).sort()).toEqual(keys);
  });

  it('has the generated table in docs/kubernetes/injection.md (UPDATE_DOCS=1 regenerates it)', () => {
    const doc = readFileSync(docPath, 'utf8');
    const start = doc.indexOf(begin);
    const stop = doc.indexOf(end);
    expect(start, `the doc has no "${begin}" marker`).toBeGreaterThanOrEqual(0);
    expect(stop).toBeGreaterThan(start);
    const expected = `${begin}\n${annotationTableMarkdown()}\n${end}`;
    const actual = doc.slice(start, stop + end.length);
    if (actual !== expected && process.env.UPDATE_DOCS === '1') {
      writeFileSync(docPath, doc.slice(0, start) + expected + doc.slice(stop + end.length));
      return;
    }
    expect(actual).toBe(expected);
    for (const row of annotationTable) expect(doc).toContain(`| \`${row.key}\` |`);
  });
});
