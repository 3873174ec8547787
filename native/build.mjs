#!/usr/bin/env node
/**
 * Builds the optional OpenBLAS addon (native/vmoe_blas.cc) with node-gyp into
 * node_modules/.cache/vmoe-blas/, outside the source tree.
 *
 *   node native/build.mjs             # fail loudly (exit 1) when the build fails
 *   node native/build.mjs --optional  # never fail: say why and leave the toolkit on plain wasm
 *
 * Needs a C++ compiler, OpenBLAS headers and library (Debian: libopenblas-dev)
 * and node-gyp (bundled with npm). VMOE_NATIVE=0 skips the build.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const outDir = path.join(root, 'node_modules', '.cache', 'vmoe-blas');
const optional = process.argv.includes('--optional');

function give(reason) {
  const msg = `[vmoe] native BLAS addon not built: ${reason}\n` +
    '[vmoe] the toolkit will run on the plain wasm backend (install a C++ compiler and libopenblas-dev, then: npm run build:native)\n';
  process.stderr.write(msg);
  process.exit(optional ? 0 : 1);
}

/** node-gyp: the one npm runs scripts with, a local install, or the one bundled with npm next to node. */
function findNodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    path.join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ];
  return candidates.find((c) => c && fs.existsSync(c)) ?? null;
}

/** Local Node headers (distribution packages install them): saves node-gyp a download. */
function findNodeDir() {
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  return fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h')) ? prefix : null;
}

if (process.env.VMOE_NATIVE === '0') give('skipped (VMOE_NATIVE=0)');
const gyp = findNodeGyp();
if (!gyp) give('node-gyp not found');

fs.mkdirSync(outDir, { recursive: true });
for (const f of ['binding.gyp', 'vmoe_blas.cc']) fs.copyFileSync(path.join(here, f), path.join(outDir, f));
const args = [gyp, 'rebuild'];
const nodeDir = findNodeDir();
if (nodeDir) args.push(`--nodedir=${nodeDir}`);
const r = spawnSync(process.execPath, args, { cwd: outDir, encoding: 'utf8' });
if (r.status !== 0) {
  const log = `${r.stdout ?? ''}${r.stderr ?? ''}`.split('\n').filter((l) => /error|not found|No such/i.test(l)).slice(0, 6).join('\n');
  give(`node-gyp failed (exit ${r.status ?? r.signal})${log ? `:\n${log}` : ''}`);
}
const built = path.join(outDir, 'build', 'Release', 'vmoe_blas.node');
if (!fs.existsSync(built)) give(`node-gyp succeeded but ${built} is missing`);
process.stderr.write(`[vmoe] native BLAS addon built: ${path.relative(root, built)}\n`);
