import { beforeAll, describe, expect, it } from 'vitest';
import { initEngine } from '../../src/engine/index.js';
import type { Outputs } from '../../src/vmoe/outputs.js';
import {
  modelSweepEvaluator,
  parseNumberList,
  processedFractionOf,
  runSweep,
  sweepSettings,
  type BatchPriorityMode,
} from '../../src/eval/sweep.js';
import { sweepFigures } from '../../src/export/sweep-figures.js';
import { flopsPerImage } from '../../src/vmoe/flops.js';
import { VisionMoE } from '../../src/vmoe/model.js';
import { syntheticDataset, tinyConfig } from './helpers.js';
import { checkSvg, count } from './svg-check.js';

beforeAll(async () => {
  await initEngine({ backend: 'wasm', quiet: true, threads: 1 });
});

describe('sweep grid', () => {
  it.each([
    { factors: [0.1, 0.5, 1.05], ks: [1, 2], mode: 'both' as BatchPriorityMode, modes: 2 },
    { factors: [1], ks: [1], mode: 'on' as BatchPriorityMode, modes: 1 },
    { factors: [0.25, 0.5, 1, 2, 4], ks: [2], mode: 'off' as BatchPriorityMode, modes: 1 },
  ])('$factors × K $ks × $mode is the Cartesian product', ({ factors, ks, mode, modes }) => {
    const grid = sweepSettings({ capacityFactors: factors, ks, batchPriority: mode });
    expect(grid).toHaveLength(factors.length * ks.length * modes);
    const keys = new Set(grid.map((s) => `${s.batchPriority}|${s.k}|${s.capacityFactor}`));
    expect(keys.size).toBe(grid.length);
    const wantModes = mode === 'both' ? [true, false] : [mode === 'on'];
    for (const b of wantModes)
      for (const k of ks) for (const c of factors) expect(keys.has(`${b}|${k}|${c}`)).toBe(true);
    expect(grid[0]!.batchPriority).toBe(mode !== 'off'); // BPR first
  });
  it.each([
    [{ capacityFactors: [], ks: [1] }, /at least one capacity factor/],
    [{ capacityFactors: [0.5, 0.5], ks: [1] }, /capacity factor 0.5 is listed twice/],
    [{ capacityFactors: [-1], ks: [1] }, /capacity factor must be.*> 0, got -1/],
    [{ capacityFactors: [1], ks: [1.5] }, /K must be an integer/],
    [{ capacityFactors: [1], ks: [] }, /at least one K/],
  ])('refuses %o', (opts, pattern) => {
    expect(() => sweepSettings({ ...opts, batchPriority: 'both' })).toThrow(pattern);
  });
  it('refuses an unknown routing mode', () => {
    expect(() =>
      sweepSettings({ capacityFactors: [1], ks: [1], batchPriority: 'sometimes' as BatchPriorityMode }),
    ).toThrow(/both, on or off/);
  });
  it('parses number lists and names the bad entry', () => {
    expect(parseNumberList('0.1, 0.2,1.05,', '--capacity-factors')).toEqual([0.1, 0.2, 1.05]);
    expect(() => parseNumberList('0.1,x', '--capacity-factors')).toThrow(/--capacity-factors: "x" is not a number/);
  });
});

describe('runSweep plumbing (fake evaluator)', () => {
  // 2 examples, 2 classes: the first right with p = e/(1+e), the second wrong.
  const outputs = (processed: number[]): Outputs => ({
    n: 2,
    numClasses: 2,
    members: 1,
    logits: Float32Array.from([1, 0, 1, 0]),
    preLogits: new Float32Array(0),
    preLogitsDim: 0,
    labels: Int32Array.from([0, 1]),
    router: processed.map((p, i) => ({
      block: 2 * i + 1,
      processedFraction: p,
      dropFraction: 1 - p,
      expertLoad: [1],
      capacity: 4,
      groupSize: 8,
    })),
    seconds: 0.5,
  });
  it("rows carry the setting, the metrics, the mean processed fraction and the evaluator's FLOPs", () => {
    const seen: unknown[] = [];
    const r = runSweep(sweepSettings({ capacityFactors: [0.5, 1], ks: [1], batchPriority: 'on' }), {
      evaluate: (routing) => {
        seen.push(routing);
        return outputs([routing.capacityFactor! * 0.5, routing.capacityFactor!]);
      },
      flops: (routing) => 1000 * routing.capacityFactor!,
    });
    expect(seen).toEqual([
      { capacityFactor: 0.5, k: 1, batchPriority: true },
      { capacityFactor: 1, k: 1, batchPriority: true },
    ]);
    const p = Math.E / (1 + Math.E);
    expect(r.rows[0]).toMatchObject({
      routing: 'bpr',
      k: 1,
      capacity_factor: 0.5,
      accuracy: 0.5,
      processed_fraction: (0.25 + 0.5) / 2,
      flops_per_image: 500,
      images_per_s: 4,
      capacity: 4,
      group_size: 8,
      processed_block1: 0.25,
      processed_block3: 0.5,
    });
    expect(r.rows[0]!.nll).toBeCloseTo((-Math.log(p) - Math.log(1 - p)) / 2, 6);
    expect(r.rows[1]!.processed_fraction).toBe(0.75);
  });
  it('processed fraction of a model without MoE layers is 1', () => {
    expect(processedFractionOf([])).toBe(1);
  });
});

describe('sweep of a tiny V-MoE', () => {
  const ds = syntheticDataset(16);
  const factors = [0.1, 0.25, 0.5, 1, 2, 4];
  // capacityRounding none: C = ceil(S·K·c/E), so each factor moves the capacity (S = 10, E = 4)
  const cfg = tinyConfig({}, { capacityRounding: 'none' });
  const settings = sweepSettings({ capacityFactors: factors, ks: [1, 2], batchPriority: 'both' });
  let rows: ReturnType<typeof runSweep>['rows'] = [];
  beforeAll(() => {
    const model = VisionMoE.init(cfg, 21);
    rows = runSweep(settings, modelSweepEvaluator(model, ds, { batchSize: 8, scale: 'minus1to1' })).rows;
    model.dispose();
  });

  it('runs every setting once, in grid order', () => {
    expect(rows.map((r) => `${r.routing}|${r.k}|${r.capacity_factor}`)).toEqual(
      settings.map((s) => `${s.batchPriority ? 'bpr' : 'vanilla'}|${s.k}|${s.capacityFactor}`),
    );
  });
  it.each([
    ['bpr', 1],
    ['bpr', 2],
    ['vanilla', 1],
    ['vanilla', 2],
  ])('%s K=%i: processed fraction never falls as the capacity factor rises, and reaches 1 once C ≥ S', (routing, k) => {
    const line = rows.filter((r) => r.routing === routing && r.k === k);
    for (let i = 1; i < line.length; i++)
      expect(line[i]!.processed_fraction).toBeGreaterThanOrEqual(line[i - 1]!.processed_fraction);
    expect(line[0]!.processed_fraction).toBeLessThan(1);
    for (const r of line) if (r.capacity! >= 10) expect(r.processed_fraction).toBe(1);
    for (const r of line) expect(r.capacity).toBe(Math.ceil((10 * k * r.capacity_factor) / 4 - 1e-9));
  });
  it('BPR and vanilla agree when nothing is dropped (same logits → same metrics)', () => {
    for (const r of rows.filter((x) => x.routing === 'bpr' && x.processed_fraction === 1)) {
      const v = rows.find((x) => x.routing === 'vanilla' && x.k === r.k && x.capacity_factor === r.capacity_factor)!;
      expect(v.accuracy).toBe(r.accuracy);
      expect(v.nll).toBeCloseTo(r.nll, 6);
    }
  });
  it('FLOPs per image equal flopsPerImage with the same overrides', () => {
    for (const r of rows) {
      expect(r.flops_per_image).toBe(
        flopsPerImage(cfg, { capacityFactor: r.capacity_factor, k: r.k, batchPriority: r.routing === 'bpr' }).total,
      );
    }
  });
  it('FLOPs match a hand count: K=2, c=1 → C = ceil(10·2·1/4) = 5 slots per group of 2 images', () => {
    const H = 8,
      M = 12,
      E = 4,
      Tk = 5,
      P = 16,
      classes = 3,
      C = 5,
      groupImages = 2;
    const embed = 2 * 4 * P * H;
    const attention = 2 * (2 * Tk * H * 3 * H + 2 * 2 * Tk * Tk * H + 2 * Tk * H * H);
    const denseMlp = 2 * Tk * 2 * H * M; // block 0
    const router = 2 * Tk * H * E;
    const experts = 2 * ((E * C) / groupImages) * 2 * H * M;
    const head = 2 * H * classes;
    const r = rows.find((x) => x.k === 2 && x.capacity_factor === 1)!;
    expect(r.flops_per_image).toBe(embed + attention + denseMlp + router + experts + head);
  });
  it('figures: one line per (routing mode, K), one marker per setting, well-formed SVG', () => {
    const figs = sweepFigures(rows, 'tiny');
    for (const svg of [figs.accuracy, figs.nll]) {
      const els = checkSvg(svg);
      expect(count(els, 'polyline')).toBe(4);
      expect(count(els, 'circle')).toBe(rows.length);
      for (const name of ['BPR K=1', 'BPR K=2', 'vanilla K=1', 'vanilla K=2'])
        expect(svg).toContain(`data-name="${name}"`);
    }
  });
  it('works for E³: ensemble metrics per setting, FLOPs from flopsPerImage, monotone processed fraction', () => {
    const e3 = tinyConfig({ type: 'e3', ensemble: { members: 2 } }, { capacityRounding: 'none' });
    const model = VisionMoE.init(e3, 5);
    const grid = sweepSettings({ capacityFactors: [0.25, 1, 4], ks: [1], batchPriority: 'both' });
    const r = runSweep(grid, modelSweepEvaluator(model, ds, { batchSize: 8, scale: 'minus1to1' })).rows;
    model.dispose();
    expect(r).toHaveLength(6);
    for (const routing of ['bpr', 'vanilla']) {
      const line = r.filter((x) => x.routing === routing);
      for (let i = 1; i < line.length; i++)
        expect(line[i]!.processed_fraction).toBeGreaterThanOrEqual(line[i - 1]!.processed_fraction);
      expect(line[2]!.processed_fraction).toBe(1);
    }
    for (const row of r)
      expect(row.flops_per_image).toBe(flopsPerImage(e3, { capacityFactor: row.capacity_factor, k: row.k }).total);
  });
  it('refuses models the sweep does not apply to', () => {
    const vit = VisionMoE.init(tinyConfig({ type: 'vit' }), 1);
    expect(() => modelSweepEvaluator(vit, ds, { batchSize: 8, scale: 'minus1to1' })).toThrow(/no MoE layer/);
    vit.dispose();
    const ec = VisionMoE.init(tinyConfig({}, { router: 'expert-choice' }), 1);
    expect(() => modelSweepEvaluator(ec, ds, { batchSize: 8, scale: 'minus1to1' })).toThrow(/expert-choice/);
    ec.dispose();
  });
});
