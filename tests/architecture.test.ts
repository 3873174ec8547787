/**
 * The layer order of src/ (docs/architecture.md, .dependency-cruiser.cjs): no import goes up the stack
 * util → data → engine → metrics → robustness → fewshot → vmoe → ensembles → config → checkpoint → train →
 * eval → export → experiments → cli, and there is no import cycle. Checked with dependency-cruiser on the real
 * tree, and on small fixture trees to show the check does catch what it forbids.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(__dirname, '..');
const depcruise = path.join(root, 'node_modules', '.bin', 'depcruise');
const config = path.join(root, '.dependency-cruiser.cjs');

interface Violation {
  rule: { name: string };
  from: string;
  to: string;
}

function cruise(cwd: string): { violations: Violation[]; modules: number } {
  const r = spawnSync(depcruise, ['src', '--config', config, '--output-type', 'json'], {
    cwd,
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  expect(r.stderr).toBe('');
  const out = JSON.parse(r.stdout) as { summary: { violations: Violation[]; totalCruised: number } };
  return { violations: out.summary.violations, modules: out.summary.totalCruised };
}

function fixture(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmoe-layers-'));
  for (const [name, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), text);
  }
  return dir;
}

describe('layering of src/', () => {
  it('has no upward import and no cycle', () => {
    const { violations, modules } = cruise(root);
    expect(modules).toBeGreaterThan(100); // it really read the tree
    expect(violations.map((v) => `${v.rule.name}: ${v.from} → ${v.to}`)).toEqual([]);
  });

  it('catches an upward import, type-only included', () => {
    const dir = fixture({
      'src/util/a.ts': "import type { X } from '../cli/b.js';\nexport const a = (x: X) => x;\n",
      'src/cli/b.ts': 'export type X = number;\n',
    });
    const names = cruise(dir).violations.map((v) => `${v.rule.name}: ${v.from} → ${v.to}`);
    expect(names).toEqual(['no-upward-from-util: src/util/a.ts → src/cli/b.ts']);
  });

  it('catches a cycle inside one folder and a folder missing from the layer list', () => {
    const dir = fixture({
      'src/eval/a.ts': "import { b } from './b.js';\nexport const a = () => b;\n",
      'src/eval/b.ts': "import { a } from './a.js';\nexport const b = () => a;\n",
      'src/misc/c.ts': "import { a } from '../eval/a.js';\nexport const c = a;\n",
    });
    const rules = cruise(dir).violations.map((v) => v.rule.name);
    expect(rules).toContain('no-circular');
    expect(rules).toContain('no-unknown-folder');
  });
});
