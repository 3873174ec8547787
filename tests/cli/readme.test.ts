/** `vmoe readme` through the built CLI: result sections go to docs/results.md unless --readme names another file. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { cli, runCli } from '../helpers/cli.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmoe-readme-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
beforeAll(() => {
  if (!fs.existsSync(cli))
    throw new Error('dist/ is missing: run `npm run build` (npm ci does it through the prepare script)');
});

const vmoe = (...args: string[]) => runCli(['readme', ...args], dir);
const doc = (text: string) => {
  fs.mkdirSync(path.join(dir, 'docs'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'docs/results.md'), text);
};
const read = (p: string) => fs.readFileSync(path.join(dir, p), 'utf8');

describe('vmoe readme', () => {
  it('writes a --file table into docs/results.md by default, the README untouched', () => {
    doc('# Results\n\n<!-- vmoe:t -->\nold\n<!-- /vmoe:t -->\nafter\n');
    fs.writeFileSync(path.join(dir, 'README.md'), '<!-- vmoe:t -->\nreadme\n<!-- /vmoe:t -->\n');
    fs.writeFileSync(path.join(dir, 'table.md'), '# Latest benchmark\n\n| a |\n| --- |\n| 1 |\n');
    const r = vmoe('--section', 't', '--file', 'table.md', '--command', 'npm run bench');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('updated section t of docs/results.md');
    expect(read('docs/results.md')).toBe(
      '# Results\n\n<!-- vmoe:t -->\n| a |\n| --- |\n| 1 |\n\nRegenerate: `npm run bench`\n<!-- /vmoe:t -->\nafter\n',
    );
    expect(read('README.md')).toBe('<!-- vmoe:t -->\nreadme\n<!-- /vmoe:t -->\n');
  });
  it('--readme FILE still writes another file (backward compatible)', () => {
    const r = vmoe('--section', 't', '--file', 'table.md', '--readme', 'README.md');
    expect(r.status).toBe(0);
    expect(read('README.md')).toBe('<!-- vmoe:t -->\n| a |\n| --- |\n| 1 |\n<!-- /vmoe:t -->\n');
  });
  it('a missing section or file is a usage error (exit 2) that names the file, and nothing is written', () => {
    const before = read('docs/results.md');
    const r = vmoe('--section', 'nope', '--file', 'table.md');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/docs\/results\.md: no section nope/);
    expect(read('docs/results.md')).toBe(before);
    const m = vmoe('--section', 't', '--file', 'table.md', '--readme', 'missing.md');
    expect(m.status).toBe(2);
    expect(m.stderr).toMatch(/missing\.md: no such file.*docs\/results\.md/);
  });
});
