/**
 * Parity with the reference implementation's own outputs: checkpoints written by google-research/vmoe and the
 * logits it computed (tests/fixtures/vmoe-ref/generate.py, which needs jax + flax). `vmoe import` + `vmoe predict`
 * must give the same logits within 2e-4 + 1e-4·max|logit| and the same pre-logits, for every model and routing
 * setting the script recorded. Skipped, saying so, until the fixtures have been generated.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { vmoe } from '../helpers/cli.js';
import { parseNpy, toFloat32 } from '../../src/util/npy.js';

const DIR = path.resolve(__dirname, '../fixtures/vmoe-ref/reference');
const manifestFile = path.join(DIR, 'reference.json');
const have = fs.existsSync(manifestFile);
if (!have) {
  console.warn(
    '[reference-parity] skipped: tests/fixtures/vmoe-ref/reference/ is absent; generate it with tests/fixtures/vmoe-ref/generate.py (needs jax + flax)',
  );
}

interface Manifest {
  images: string;
  models: Record<
    string,
    {
      k: number;
      members: number;
      group_size: number;
      settings: Record<string, { capacity_factor: number; batch_priority: boolean }>;
    }
  >;
}

const readNpy = (file: string) => {
  const a = parseNpy(fs.readFileSync(file), file);
  return { shape: a.shape, data: toFloat32(a.dtype, a.bytes) };
};

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vmoe-parity-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe.skipIf(!have)('parity with the reference implementation', () => {
  const manifest: Manifest = have ? JSON.parse(fs.readFileSync(manifestFile, 'utf8')) : { images: '', models: {} };
  for (const [name, m] of Object.entries(manifest.models)) {
    it(`${name}: logits and pre-logits at every recorded routing setting`, () => {
      const out = path.join(tmp, name);
      const imp = vmoe(
        'import',
        path.join(DIR, name),
        '--out',
        out,
        '--num-selected-experts',
        String(m.k),
        '--group-size',
        String(m.group_size),
      );
      expect(imp.status, imp.stderr).toBe(0);
      for (const [setting, s] of Object.entries(m.settings)) {
        const pred = path.join(out, setting);
        const args = ['predict', '--checkpoint', out, '--input', path.join(DIR, manifest.images), '--out', pred];
        args.push(
          '--capacity-factor',
          String(s.capacity_factor),
          s.batch_priority ? '--batch-priority' : '--no-batch-priority',
        );
        const r = vmoe(...args);
        expect(r.status, r.stderr).toBe(0);
        for (const kind of ['logits', 'pre_logits']) {
          const got = readNpy(path.join(pred, `${kind}.npy`));
          const want = readNpy(path.join(DIR, `${name}.${setting}.${kind}.npy`));
          expect(got.shape, `${setting} ${kind}`).toEqual(want.shape);
          const scale = want.data.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
          for (let i = 0; i < want.data.length; i++) {
            expect(Math.abs(got.data[i]! - want.data[i]!), `${setting} ${kind}[${i}]`).toBeLessThan(
              2e-4 + 1e-4 * scale,
            );
          }
        }
      }
    });
  }
});
