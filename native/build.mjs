#!/usr/bin/env node
/**
 * Builds the optional native addon (native/src/: common.h and one .cc per unit, listed
 * in native/binding.gyp) with node-gyp into node_modules/.cache/vmoe-blas/, outside the
 * source tree; the result is node_modules/.cache/vmoe-blas/build/Release/vmoe_blas.node.
 *
 *   node native/build.mjs             # fail loudly (exit 1) when the build fails
 *   node native/build.mjs --optional  # never fail: say why and leave the toolkit on plain wasm
 *
 * Needs a C++ compiler, OpenBLAS headers and library (Debian: libopenblas-dev)
 * and node-gyp (bundled with npm). With oneDNN's headers present (Debian:
 * libdnnl-dev) the addon also links oneDNN and runs its products there; if that
 * build fails it is retried with OpenBLAS alone. VMOE_NATIVE=0 skips the build;
 * VMOE_NATIVE_DNNL=0 leaves oneDNN out.
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
  const msg =
    `[vmoe] native BLAS addon not built: ${reason}\n` +
    '[vmoe] the toolkit will run on the plain wasm backend (install a C++ compiler and libopenblas-dev, then: npm run build:native)\n';
  process.stderr.write(msg);
  process.exit(optional ? 0 : 1);
}

/** node-gyp: the one npm runs scripts with, a local install, or the one bundled with npm next to node. */
function findNodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    path.join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    path.join(
      path.dirname(process.execPath),
      '..',
      'lib',
      'node_modules',
      'npm',
      'node_modules',
      'node-gyp',
      'bin',
      'node-gyp.js',
    ),
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

/** oneDNN's header where the compiler looks by default (Debian's libdnnl-dev puts it in /usr/include). */
function haveDnnl() {
  if (process.env.VMOE_NATIVE_DNNL === '0') return false;
  return ['/usr/include/dnnl.h', '/usr/local/include/dnnl.h'].some((f) => fs.existsSync(f));
}

/** node-gyp rebuild in outDir with binding.gyp, plus oneDNN when `dnnl`; returns the failure log or null. */
function build(dnnl) {
  const binding = JSON.parse(fs.readFileSync(path.join(here, 'binding.gyp'), 'utf8'));
  if (dnnl) {
    const t = binding.targets[0];
    t.defines = [...(t.defines ?? []), 'VMOE_HAVE_DNNL'];
    t.cflags_cc = [...t.cflags_cc, '-fopenmp'];
    t.libraries = [...t.libraries, '-ldnnl', '-fopenmp'];
  }
  fs.writeFileSync(path.join(outDir, 'binding.gyp'), JSON.stringify(binding, null, 2));
  const args = [gyp, 'rebuild'];
  const nodeDir = findNodeDir();
  if (nodeDir) args.push(`--nodedir=${nodeDir}`);
  const r = spawnSync(process.execPath, args, { cwd: outDir, encoding: 'utf8' });
  if (r.status === 0) return null;
  const log = `${r.stdout ?? ''}${r.stderr ?? ''}`
    .split('\n')
    .filter((l) => /error|not found|No such/i.test(l))
    .slice(0, 6)
    .join('\n');
  return `node-gyp failed (exit ${r.status ?? r.signal})${log ? `:\n${log}` : ''}`;
}

fs.mkdirSync(outDir, { recursive: true });
// A fresh copy of the sources (binding.gyp names them relative to itself); drop the
// single-file source older versions copied here.
fs.rmSync(path.join(outDir, 'src'), { recursive: true, force: true });
fs.rmSync(path.join(outDir, 'vmoe_blas.cc'), { force: true });
fs.cpSync(path.join(here, 'src'), path.join(outDir, 'src'), { recursive: true });
let withDnnl = haveDnnl();
let failure = build(withDnnl);
if (failure && withDnnl) {
  process.stderr.write(`[vmoe] addon build with oneDNN failed; retrying with OpenBLAS alone\n${failure}\n`);
  withDnnl = false;
  failure = build(false);
}
if (failure) give(failure);
const built = path.join(outDir, 'build', 'Release', 'vmoe_blas.node');
if (!fs.existsSync(built)) give(`node-gyp succeeded but ${built} is missing`);
process.stderr.write(
  `[vmoe] native BLAS addon built (${withDnnl ? 'oneDNN + OpenBLAS' : 'OpenBLAS'}): ${path.relative(root, built)}\n`,
);
