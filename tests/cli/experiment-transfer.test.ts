/**
 * `vmoe experiment transfer` end to end at a few steps: both directions, the three models, the deep ensemble pairing
 * two V-MoE fine-tunes of the same upstream, E³ initialised from that upstream, and a rerun that trains nothing.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { vmoe } from '../helpers/cli.js';
import { loadCheckpoint } from '../../src/checkpoint/format.js';
import { resolveCheckpoint } from '../../src/checkpoint/load.js';

const out = fs.mkdtempSync(path.join(os.tmpdir(), 'vmoe-transfer-'));
afterAll(() => fs.rmSync(out, { recursive: true, force: true }));
const args = [
  'experiment',
  'transfer',
  '--upstream-steps',
  '6',
  '--finetune-steps',
  '4',
  '--eval-limit',
  '64',
  '--seeds',
  '1',
  '--out',
  out,
];

describe('vmoe experiment transfer', () => {
  it('fine-tunes one upstream per direction three ways and tabulates them', () => {
    const r = vmoe(...args);
    expect(r.status, r.stderr).toBe(0);
    for (const [up, down] of [
      ['fashion-mnist', 'mnist'],
      ['mnist', 'fashion-mnist'],
    ]) {
      const base = path.join(out, `${up}-to-${down}`);
      const md = fs.readFileSync(path.join(base, 'results.md'), 'utf8');
      expect(md).toMatch(/\| vmoe-k2 \(fine-tuned\) \| 1 \|/);
      expect(md).toMatch(/\| e3-m2-k1 \(from the upstream V-MoE\) \| 1 \|/);
      expect(md).toMatch(/\| deep ensemble of 2 vmoe-k2 fine-tunes \| 1 \|/);
      expect(md).toContain(`ood_${up}_msp_auroc`);
      // the ensemble is the two V-MoE fine-tunes (seeds 0 and 1), each initialised from this direction's upstream
      const ens = JSON.parse(fs.readFileSync(path.join(base, 'deep-ensemble-s0', 'eval_test', 'results.json'), 'utf8'));
      const hashes = (ens.checkpoint as { sha256: string }[]).map((c) => c.sha256);
      expect(hashes).toEqual(
        [0, 1].map((s) => loadCheckpoint(resolveCheckpoint(path.join(base, `vmoe-k2-s${s}`))).sha256),
      );
      const upstream = resolveCheckpoint(path.join(base, 'upstream-vmoe'));
      for (const run of ['vmoe-k2-s0', 'vmoe-k2-s1', 'e3-m2-k1-s0']) {
        const summary = JSON.parse(fs.readFileSync(path.join(base, run, 'train_summary.json'), 'utf8'));
        expect(summary.init_from.checkpoint ?? summary.init_from.file ?? JSON.stringify(summary.init_from)).toContain(
          upstream,
        );
        expect(summary.config.data.dataset).toBe(down);
      }
    }
    // a second run reuses every finished run and evaluation: nothing is trained again
    const again = vmoe(...args);
    expect(again.status, again.stderr).toBe(0);
    expect(again.stderr).not.toMatch(/\[experiment\] training/);
  });
});
