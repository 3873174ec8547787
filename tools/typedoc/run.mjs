#!/usr/bin/env node
/**
 * `npm run docs`: the API reference (TypeDoc, typedoc.json) into docs/api.
 *
 * TypeDoc runs on the TypeScript compiler API, which TypeScript 7 (the root devDependency, a native
 * compiler) does not have; TypeDoc 0.28 takes typescript 5.0–6.0 as a peer dependency. As a root
 * devDependency that peer would conflict with typescript@7 (npm ERESOLVE, and `npm ci` would fail for
 * everyone), so TypeDoc and typescript 6.0 live in this folder's own package, installed here on first use.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const bin = path.join(here, 'node_modules/typedoc/bin/typedoc');
const run = (cmd, args, opts = {}) => {
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: root, ...opts });
  if (r.status !== 0) process.exit(r.status ?? 1);
};

if (!fs.existsSync(bin)) {
  console.error('docs: installing TypeDoc into tools/typedoc (once)');
  run('npm', ['ci', '--no-audit', '--no-fund', '--ignore-scripts'], { cwd: here, shell: process.platform === 'win32' });
}
run(process.execPath, [bin, ...process.argv.slice(2)]);
