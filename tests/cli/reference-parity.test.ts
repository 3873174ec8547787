/**
 * Parity with the reference implementation's own outputs: checkpoints written by google-research/vmoe and the
 * logits it computed (tests/fixtures/vmoe-ref/generate.py, which needs jax + flax). `vmoe import` + `vmoe predict`
 * must give the same logits within 2e-4 + 1e-4·max|logit|, the same pre-logits, and the same dropped token choices
 * in every MoE layer, for every model and routing setting the script recorded. Skipped, saying so, until the fixtures have been generated.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { vmoe } from '../helpers/cli.js';
import { parseNpy, toFloat32 } from '../../src/util/npy.js';

// VMOE_REFERENCE_FIXTURES points the test at another folder generate.py wrote (other sizes, another reference revision).
const DIR = path.resolve(process.env.VMOE_REFERENCE_FIXTURES ?? path.join(__dirname, '../fixtures/vmoe-ref/reference'));
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
  /** Checkpoints `vmoe export` wrote from a source model, read back by the reference's restore_checkpoint. */
  exports: Record<string, { source: string; dtype: string; shards: number; settings: string[] }>;
  /** Dense ViTs of google-research/vision_transformer saved as its released .npz files are. */
  vit_npz: Record<string, { file: string; classifier: string }>;
}

const readNpy = (file: string) => {
  const a = parseNpy(fs.readFileSync(file), file);
  return { shape: a.shape, data: toFloat32(a.dtype, a.bytes) };
};

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vmoe-parity-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe.skipIf(!have)('parity with the reference implementation', () => {
  const manifest: Manifest = have
    ? JSON.parse(fs.readFileSync(manifestFile, 'utf8'))
    : { images: '', models: {}, exports: {}, vit_npz: {} };
  /** `vmoe import` of the reference checkpoint `name` into a fresh run folder; returns that folder. */
  const importRef = (name: string, out: string) => {
    const m = manifest.models[name]!;
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
    return out;
  };
  /** `vmoe predict` of run folder `run` at the reference's routing setting; returns the output folder. */
  const predictAt = (run: string, name: string, setting: string) => {
    const s = manifest.models[name]!.settings[setting]!;
    const pred = path.join(run, setting);
    const r = vmoe(
      'predict',
      '--checkpoint',
      run,
      '--input',
      path.join(DIR, manifest.images),
      '--out',
      pred,
      '--capacity-factor',
      String(s.capacity_factor),
      s.batch_priority ? '--batch-priority' : '--no-batch-priority',
    );
    expect(r.status, r.stderr).toBe(0);
    return pred;
  };
  /** got ≈ want within 2e-4 + 1e-4·max|want| element by element, the tolerance. */
  const expectClose = (gotFile: string, wantFile: string, what: string) => {
    const got = readNpy(gotFile);
    const want = readNpy(wantFile);
    expect(got.shape, what).toEqual(want.shape);
    const scale = want.data.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
    for (let i = 0; i < want.data.length; i++) {
      expect(Math.abs(got.data[i]! - want.data[i]!), `${what}[${i}]`).toBeLessThan(2e-4 + 1e-4 * scale);
    }
  };

  for (const [name, m] of Object.entries(manifest.models)) {
    it(`${name}: logits, pre-logits and dropped tokens at every recorded routing setting`, () => {
      const out = importRef(name, path.join(tmp, name));
      for (const setting of Object.keys(m.settings)) {
        const pred = predictAt(out, name, setting);
        for (const kind of ['logits', 'pre_logits']) {
          expectClose(
            path.join(pred, `${kind}.npy`),
            path.join(DIR, `${name}.${setting}.${kind}.npy`),
            `${setting} ${kind}`,
          );
        }
        // Which tokens lost which share of their k choices: the same tokens, layer by layer, as the reference.
        const got = readNpy(path.join(pred, 'dropped.npy'));
        const want = readNpy(path.join(DIR, `${name}.${setting}.dropped.npy`));
        expect(got.shape, `${setting} dropped`).toEqual(want.shape);
        expect(Array.from(got.data), `${setting} dropped`).toEqual(Array.from(want.data));
      }
    });
  }

  for (const [name, v] of Object.entries(manifest.vit_npz)) {
    it(`${name}: a vision_transformer .npz (${v.classifier} readout) gives vit_jax's logits and pre-logits`, () => {
      const out = path.join(tmp, name);
      const imp = vmoe('import', path.join(DIR, v.file), '--out', out);
      expect(imp.status, imp.stderr).toBe(0);
      const pred = path.join(out, 'predict');
      const r = vmoe('predict', '--checkpoint', out, '--input', path.join(DIR, manifest.images), '--out', pred);
      expect(r.status, r.stderr).toBe(0);
      for (const kind of ['logits', 'pre_logits']) {
        expectClose(path.join(pred, `${kind}.npy`), path.join(DIR, `${name}.${kind}.npy`), kind);
      }
    });
  }

  for (const [name, e] of Object.entries(manifest.exports)) {
    it(`${name}: what \`vmoe export --format vmoe --dtype ${e.dtype}\` wrote, read by the reference, gives our logits`, () => {
      const out = importRef(e.source, path.join(tmp, `${name}-source`));
      for (const setting of e.settings) {
        const pred = predictAt(out, e.source, setting);
        expectClose(
          path.join(pred, 'logits.npy'),
          path.join(DIR, `${name}.${setting}.logits.npy`),
          `${setting} logits`,
        );
      }
    });
  }
});
