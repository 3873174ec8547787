/**
 * Parameter shapes and seeded initialisation for ViT / V-MoE. Values are drawn
 * on the host with our Rng so a seed gives the same model on every backend.
 */
import { moeBlocks, tokensPerImage, type ModelConfig } from './config.js';
import { Rng } from '../util/rng.js';

export type Init =
  | { kind: 'zeros' }
  | { kind: 'ones' }
  | { kind: 'const'; value: number }
  | { kind: 'normal'; std: number }
  | { kind: 'lecun-normal'; fanIn: number }
  | { kind: 'xavier-uniform'; fanIn: number; fanOut: number };

export interface ParamSpec {
  shape: number[];
  init: Init;
  /** Expert-stacked parameter whose leading axis is E: 'identical' init copies expert 0. */
  stackedExperts?: boolean;
  /** Subject to decoupled weight decay (kernels, not biases/norms/embeddings). */
  decay: boolean;
}

export function paramSpecs(cfg: ModelConfig): Map<string, ParamSpec> {
  const specs = new Map<string, ParamSpec>();
  const H = cfg.hidden,
    P = cfg.patchSize * cfg.patchSize * cfg.channels;
  const add = (name: string, spec: ParamSpec) => specs.set(name, spec);
  const kernel = (name: string, i: number, o: number) =>
    add(`${name}/kernel`, { shape: [i, o], init: { kind: 'xavier-uniform', fanIn: i, fanOut: o }, decay: true });
  const bias = (name: string, o: number) => add(`${name}/bias`, { shape: [o], init: { kind: 'zeros' }, decay: false });
  const norm = (name: string) => {
    add(`${name}/scale`, { shape: [H], init: { kind: 'ones' }, decay: false });
    add(`${name}/bias`, { shape: [H], init: { kind: 'zeros' }, decay: false });
  };

  add('embed/kernel', { shape: [P, H], init: { kind: 'lecun-normal', fanIn: P }, decay: true });
  bias('embed', H);
  if (cfg.readout === 'token') add('cls', { shape: [1, H], init: { kind: 'zeros' }, decay: false });
  add('pos', { shape: [tokensPerImage(cfg), H], init: { kind: 'normal', std: 0.02 }, decay: false });
  const moe = new Set(moeBlocks(cfg));
  for (let b = 0; b < cfg.depth; b++) {
    const p = `block${b}`;
    norm(`${p}/ln1`);
    for (const n of ['query', 'key', 'value', 'out']) {
      kernel(`${p}/attn/${n}`, H, H);
      bias(`${p}/attn/${n}`, H);
    }
    norm(`${p}/ln2`);
    if (moe.has(b)) {
      const E = cfg.moe.numExperts,
        M = cfg.mlpDim;
      // E³ stores one router per member, (H, M, E/M); reshaped to (H, E) it is the block-diagonal router.
      const routerShape = cfg.type === 'e3' ? [H, cfg.ensemble.members, E / cfg.ensemble.members] : [H, E];
      add(`${p}/moe/router/kernel`, { shape: routerShape, init: { kind: 'lecun-normal', fanIn: H }, decay: true });
      add(`${p}/moe/w1`, {
        shape: [E, H, M],
        init: { kind: 'xavier-uniform', fanIn: H, fanOut: M },
        stackedExperts: true,
        decay: true,
      });
      add(`${p}/moe/b1`, { shape: [E, M], init: { kind: 'zeros' }, stackedExperts: true, decay: false });
      add(`${p}/moe/w2`, {
        shape: [E, M, H],
        init: { kind: 'xavier-uniform', fanIn: M, fanOut: H },
        stackedExperts: true,
        decay: true,
      });
      add(`${p}/moe/b2`, { shape: [E, H], init: { kind: 'zeros' }, stackedExperts: true, decay: false });
    } else {
      kernel(`${p}/mlp/fc1`, H, cfg.mlpDim);
      bias(`${p}/mlp/fc1`, cfg.mlpDim);
      kernel(`${p}/mlp/fc2`, cfg.mlpDim, H);
      bias(`${p}/mlp/fc2`, H);
    }
  }
  norm('norm');
  let repr = H;
  if (cfg.preLogits !== null) {
    kernel('prelogits', H, cfg.preLogits);
    bias('prelogits', cfg.preLogits);
    repr = cfg.preLogits;
  }
  add('head/kernel', { shape: [repr, cfg.numClasses], init: { kind: 'zeros' }, decay: true });
  add('head/bias', { shape: [cfg.numClasses], init: { kind: 'const', value: cfg.headBiasInit }, decay: false });
  return specs;
}

function sample(init: Init, n: number, rng: Rng): Float32Array {
  const out = new Float32Array(n);
  switch (init.kind) {
    case 'zeros':
      break;
    case 'ones':
      out.fill(1);
      break;
    case 'const':
      out.fill(init.value);
      break;
    case 'normal':
      for (let i = 0; i < n; i++) out[i] = rng.normal() * init.std;
      break;
    case 'lecun-normal': {
      const std = Math.sqrt(1 / init.fanIn);
      for (let i = 0; i < n; i++) out[i] = rng.normal() * std;
      break;
    }
    case 'xavier-uniform': {
      const lim = Math.sqrt(6 / (init.fanIn + init.fanOut));
      for (let i = 0; i < n; i++) out[i] = (rng.uniform() * 2 - 1) * lim;
      break;
    }
  }
  return out;
}

/** Seeded host-side initial values, in the order of paramSpecs (so adding a layer changes only later draws). */
export function initParamValues(cfg: ModelConfig, seed: number): Map<string, { shape: number[]; data: Float32Array }> {
  const rng = new Rng(seed);
  const values = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, spec] of paramSpecs(cfg)) {
    const size = spec.shape.reduce((a, b) => a * b, 1);
    let data: Float32Array;
    if (spec.stackedExperts && cfg.moe.expertInit === 'identical') {
      const per = size / spec.shape[0]!;
      const one = sample(spec.init, per, rng);
      data = new Float32Array(size);
      for (let e = 0; e < spec.shape[0]!; e++) data.set(one, e * per);
    } else {
      data = sample(spec.init, size, rng);
    }
    values.set(name, { shape: spec.shape, data });
  }
  return values;
}

/**
 * Parameter count of a model config: `total`, and `activePerToken` (what one token uses: the dense parameters plus
 * k experts per MoE layer).
 */
export function countParams(cfg: ModelConfig): { total: number; activePerToken: number } {
  let total = 0,
    expertParams = 0;
  for (const spec of paramSpecs(cfg).values()) {
    const size = spec.shape.reduce((a, b) => a * b, 1);
    total += size;
    if (spec.stackedExperts) expertParams += size;
  }
  const E = cfg.moe.numExperts;
  const active = cfg.type !== 'vit' ? total - expertParams + (expertParams / E) * cfg.moe.k : total;
  return { total, activePerToken: active };
}
