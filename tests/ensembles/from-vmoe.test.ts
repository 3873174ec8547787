import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initEngine } from '../../src/engine/index.js';
import { e3ValuesFromVmoe, isReshapedRouterKernel } from '../../src/ensembles/from-vmoe.js';
import { saveCheckpoint, type NamedArray } from '../../src/checkpoint/format.js';
import { initFromCheckpoint } from '../../src/train/trainer.js';
import { VisionMoE } from '../../src/vmoe/model.js';
import { initParamValues } from '../../src/vmoe/params.js';
import { Rng } from '../../src/util/rng.js';
import { base, cfgOf, initModel, randomImages } from './helpers.js';

beforeAll(async () => {
  await initEngine({ backend: 'wasm', quiet: true, threads: 1 });
});

const H = base.hidden,
  E = base.moe.numExperts;

describe('isReshapedRouterKernel', () => {
  it('holds for router kernels of the same size only', () => {
    expect(isReshapedRouterKernel('block1/moe/router/kernel', H * E, H * E)).toBe(true);
    expect(isReshapedRouterKernel('block1/moe/router/kernel', H * E, H * 2 * E)).toBe(false);
    expect(isReshapedRouterKernel('block1/moe/w1', 96, 96)).toBe(false);
  });
});

describe('e3ValuesFromVmoe', () => {
  it("member m's router is columns [m·E/M, (m+1)·E/M) of the V-MoE router; the rest is copied", () => {
    const M = 2,
      Em = E / M;
    const vmoe = initParamValues(cfgOf({ type: 'vmoe' }), 1);
    vmoe.get('block1/moe/router/kernel')!.data.forEach((_, i, a) => (a[i] = i)); // entry (h, e) = h·E + e
    const e3 = e3ValuesFromVmoe(vmoe, cfgOf({ type: 'e3', ensemble: { members: M } }));
    const router = e3.get('block1/moe/router/kernel')!;
    expect(router.shape).toEqual([H, M, Em]);
    for (let h = 0; h < H; h++)
      for (let m = 0; m < M; m++)
        for (let j = 0; j < Em; j++) {
          expect(router.data[(h * M + m) * Em + j]).toBe(h * E + m * Em + j);
        }
    for (const [name, v] of vmoe) {
      if (name.endsWith('/router/kernel')) continue;
      expect(e3.get(name)!.shape, name).toEqual(v.shape);
      expect(e3.get(name)!.data, name).toEqual(v.data);
    }
  });

  it('names a parameter that does not fit', () => {
    const vmoe = initParamValues(cfgOf({ type: 'vmoe' }), 1);
    expect(() => e3ValuesFromVmoe(vmoe, cfgOf({ type: 'e3', mlpDim: 16 }))).toThrow(
      /parameter block0\/mlp\/fc1\/kernel/,
    );
  });

  it('agrees with fine-tuning an E³ from a V-MoE checkpoint', () => {
    const vmoe = initParamValues(cfgOf({ type: 'vmoe' }), 2);
    const tensors: Record<string, NamedArray> = {};
    for (const [name, v] of vmoe) tensors[`params/${name}`] = { dtype: 'float32', shape: v.shape, data: v.data };
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmoe-e3-'));
    try {
      const file = saveCheckpoint(dir, { meta: { step: 1 }, tensors });
      const cfg = cfgOf({ type: 'e3', ensemble: { members: 2 } });
      const model = VisionMoE.init(cfg, 0);
      const report = initFromCheckpoint(model, file);
      expect(report.resized).toEqual(['block1/moe/router/kernel', 'block3/moe/router/kernel']);
      expect(report.fresh).toEqual([]);
      for (const [name, v] of e3ValuesFromVmoe(vmoe, cfg)) {
        expect(model.p(name).shape, name).toEqual(v.shape);
        expect(model.p(name).dataSync(), name).toEqual(v.data);
      }
      model.dispose();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('an E³ model initialised from a V-MoE', () => {
  const fromVmoe = (vmoe: VisionMoE, members: number) => {
    const cfg = cfgOf({ type: 'e3', ensemble: { members } });
    return VisionMoE.fromValues(cfg, e3ValuesFromVmoe(vmoe.values(), cfg));
  };

  it('with M = 1 equals the V-MoE', () => {
    const vmoe = initModel(cfgOf({ type: 'vmoe' }), 1);
    const e3 = fromVmoe(vmoe, 1);
    const x = randomImages(new Rng(2), 4);
    const a = vmoe.forward(x, { train: false }).logits.dataSync();
    const b = e3.forward(x, { train: false });
    expect(b.memberLogits).toBeUndefined();
    expect(Array.from(b.logits.dataSync())).toEqual(Array.from(a));
  });

  it("each member's gates are the V-MoE gates restricted to its partition", () => {
    const M = 2,
      Em = E / M;
    const vmoe = initModel(cfgOf({ type: 'vmoe' }), 12);
    const e3 = fromVmoe(vmoe, M);
    const x = randomImages(new Rng(13), 2);
    let gv: Float32Array | null = null,
      ge: Float32Array | null = null;
    vmoe.forward(x, {
      train: false,
      onMoeLayer: (b, r) => {
        if (b === 1) gv = r.gatesClean.dataSync() as Float32Array;
      },
    });
    e3.forward(x, {
      train: false,
      onMoeLayer: (b, r) => {
        if (b === 1) ge = r.gatesClean.dataSync() as Float32Array;
      },
    });
    // first MoE block (1): its input is identical for both (blocks before it are shared and run once)
    const N = gv!.length / E; // V-MoE tokens (image, token)
    for (let t = 0; t < N; t++)
      for (let m = 0; m < M; m++) {
        let z = 0;
        for (let e = m * Em; e < (m + 1) * Em; e++) z += gv![t * E + e]!;
        for (let e = m * Em; e < (m + 1) * Em; e++)
          expect(ge![(t * M + m) * E + e]).toBeCloseTo(gv![t * E + e]! / z, 5);
      }
  });
});
