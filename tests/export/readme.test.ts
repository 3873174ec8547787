import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { replaceSection, sectionBody } from '../../src/export/readme.js';
import { eceWords } from '../../src/export/provenance.js';
import { toCsv, toLatex, toMarkdown, latexEscape } from '../../src/export/tables.js';

describe('README sections', () => {
  it('replaces only the marked section', () => {
    const t = 'a\n<!-- vmoe:x -->\nold\n<!-- /vmoe:x -->\nb\n';
    expect(replaceSection(t, 'x', 'new')).toBe('a\n<!-- vmoe:x -->\nnew\n<!-- /vmoe:x -->\nb\n');
    expect(() => replaceSection(t, 'y', 'z')).toThrow(/vmoe:y/);
  });
  it("a file's own top-level title is left out of the section; other headings and text stay", () => {
    expect(sectionBody('# Latest benchmark\n\nBenchmark 2026 …\n\n| a |\n')).toBe('Benchmark 2026 …\n\n| a |');
    expect(sectionBody('## Table\n| a |\n')).toBe('## Table\n| a |');
    expect(sectionBody('text\n# not a title\n')).toBe('text\n# not a title');
  });
});

describe("the repository's result sections", () => {
  const root = path.resolve(__dirname, '../..');
  const results = fs.readFileSync(path.join(root, 'docs/results.md'), 'utf8');
  const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
  const sections = ['quickstart', 'reference', 'sweep', 'e3', 'fewshot', 'robustness', 'bench'];
  it.each(sections)("docs/results.md (vmoe readme's default target) holds section %s once", (name) => {
    expect(results.split(`<!-- vmoe:${name} -->`)).toHaveLength(2);
    expect(results.split(`<!-- /vmoe:${name} -->`)).toHaveLength(2);
  });
  it("the README holds no section markers, and its headline table is the reference section's table, row for row", () => {
    expect(readme).not.toMatch(/<!-- \/?vmoe:/);
    const body = results.split('<!-- vmoe:reference -->')[1]!.split('<!-- /vmoe:reference -->')[0]!;
    const rows = body.split('\n').filter((l) => l.startsWith('|'));
    expect(rows.length).toBeGreaterThan(2);
    expect(readme).toContain(rows.join('\n'));
  });
});

describe('table writers', () => {
  const rows = [
    { model: 'v_moe', acc: 0.8765432, n: 10 },
    { model: 'vit', acc: 0.5, n: 3 },
  ];
  it('CSV has a header and one line per row', () => {
    expect(toCsv(rows)).toBe('model,acc,n\nv_moe,0.876543,10\nvit,0.5,3\n');
  });
  it('LaTeX escapes specials and uses booktabs', () => {
    const tex = toLatex(rows);
    expect(tex).toContain('\\toprule');
    expect(tex).toContain('v\\_moe & 0.8765 & 10 \\\\');
    expect(latexEscape('50% & $x_1$')).toBe('50\\% \\& \\$x\\_1\\$');
  });
  it('Markdown right-aligns numeric columns', () => {
    expect(toMarkdown(rows).split('\n')[1]).toBe('| --- | ---: | ---: |');
  });
});

describe('ECE convention in words (README provenance line, captions)', () => {
  it.each([
    [{ bins: 10, binning: 'equal-mass', labels: 'top-label' }, 'top-label ECE, 10 equal-mass bins'],
    [{ bins: 15, binning: null, labels: null }, 'top-label ECE, 15 equal-width bins'],
    [{ bins: null, binning: null, labels: null }, 'ECE convention not recorded'],
  ])('%j → %s', (conv, text) => {
    expect(eceWords(conv)).toBe(text);
  });
});
