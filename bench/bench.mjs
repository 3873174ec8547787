#!/usr/bin/env node
/**
 * `npm run bench`: compiles src/ and bench/ into node_modules/.cache/vmoe-bench
 * (plain node children start faster and carry no bundler memory, which keeps
 * peak-RSS figures honest), then runs bench/run.js with the given arguments.
 * Type errors are reported but do not stop the run when JavaScript was emitted.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outDir = path.join(root, 'node_modules', '.cache', 'vmoe-bench');
const tsc = path.join(root, 'node_modules', '.bin', 'tsc');
fs.mkdirSync(outDir, { recursive: true });
// src/engine/record.ts reads ../../package.json relative to itself.
fs.copyFileSync(path.join(root, 'package.json'), path.join(outDir, 'package.json'));
const c = spawnSync(tsc, ['-p', path.join(root, 'bench', 'tsconfig.json')], { cwd: root, encoding: 'utf8' });
const entry = path.join(outDir, 'bench', 'run.js');
if (c.status !== 0) {
  process.stderr.write(
    `[bench] tsc reported problems (continuing with the emitted JavaScript):\n${(c.stdout || '') + (c.stderr || '')}`.slice(
      0,
      4000,
    ) + '\n',
  );
}
if (!fs.existsSync(entry)) {
  process.stderr.write(`[bench] compilation produced no ${entry}\n`);
  process.exit(1);
}
const r = spawnSync(process.execPath, [entry, ...process.argv.slice(2)], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, VMOE_REPO_ROOT: root },
});
process.exit(r.status ?? 1);
