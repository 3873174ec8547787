/**
 * The reference implementation's parameter tree ↔ ours (docs/spec/reference-checkpoints.md §3), and the model
 * config inferred from the tree's names and shapes.
 *
 * Axis notation: D hidden, Nh heads, Dh = D/Nh, F MLP width, E experts, M E³ members, T tokens per image,
 * ph·pw patch, C channels, R representation (pre-logits) width, K classes.
 *
 *   reference (flax)                                           ours
 *   embedding/kernel (ph, pw, C, D), bias (D)                 embed/kernel (ph·pw·C, D), embed/bias
 *   cls (1, 1, D)                                             cls (1, D)
 *   Encoder/posembed_input/pos_embedding (1, T, D)            pos (T, D)
 *   Encoder/encoderblock_i/LayerNorm_0|1/{scale,bias}         block{i}/ln1|ln2/{scale,bias}
 *     SelfAttention/{query,key,value}/kernel (D, Nh, Dh)      block{i}/attn/{query,key,value}/kernel (D, D)
 *     SelfAttention/{query,key,value}/bias (Nh, Dh)           …/bias (D)
 *     SelfAttention/out/kernel (Nh, Dh, D), bias (D)          block{i}/attn/out/kernel (D, D), bias
 *     Mlp/Dense_0|1/{kernel,bias}                             block{i}/mlp/fc1|fc2/{kernel,bias}
 *     Moe/Mlp/Dense_0/kernel (E, D, F), bias (E, F)           block{i}/moe/w1, b1
 *     Moe/Mlp/Dense_1/kernel (E, F, D), bias (E, D)           block{i}/moe/w2, b2
 *     Moe/Router/dense/kernel (D, E); E³: (D, M, E/M)         block{i}/moe/router/kernel
 *   Encoder/encoder_norm/{scale,bias}                         norm/{scale,bias}
 *   pre_logits/{kernel (D, R), bias}                          prelogits/{kernel,bias}
 *   head/{kernel (R, K), bias}                                head/{kernel,bias}
 *
 * Every reshape above keeps the bytes in place: a (D, Nh, Dh) kernel read as (D, Nh·Dh) puts head h in columns
 * [h·Dh, (h+1)·Dh), which is how our attention splits heads; a (ph, pw, C, D) kernel read as (ph·pw·C, D) matches
 * patches flattened (row, column, channel).
 */
import { CheckpointError, UsageError } from '../util/errors.js';
import { toFloat32 } from '../util/npy.js';
import { parseExperiment, type ExperimentConfig } from '../config/experiment.js';
import type { ModelConfig } from '../vmoe/config.js';
import { paramSpecs } from '../vmoe/params.js';
import type { RefArray } from './reference-format.js';

/** What the tree cannot say, named as the reference's configs name it. */
export interface ReferenceRouting {
  /** `num_selected_experts` (K). Default: 2 for V-MoE, 1 for E³ (the released models' settings). */
  numSelectedExperts?: number;
  /** `group_size`: tokens per routing group (for E³ it counts the members' repeated tokens too). */
  groupSize?: number;
  /** `capacity_factor`. Default 1.05 (ours). */
  capacityFactor?: number;
  /** `batch_priority` (Batch Prioritized Routing). Default false. */
  batchPriority?: boolean;
}

/** The architecture read off a reference tree, before routing settings are added. */
export interface InferredArchitecture {
  type: 'vit' | 'vmoe' | 'e3';
  imageSize: number;
  channels: number;
  patchSize: number;
  hidden: number;
  depth: number;
  heads: number;
  mlpDim: number;
  numClasses: number;
  readout: 'token' | 'gap';
  preLogits: number | null;
  moeBlocks: number[];
  numExperts: number | null;
  members: number | null;
}

/** Prefixes under which a params tree is found in the checkpoints the reference writes. */
const PARAM_ROOTS = ['', 'params/', 'target/', 'opt/target/', 'optimizer/target/', 'params/img/', 'state/params/'];

/** The part of a checkpoint's tree that holds the model's parameters (a train state's `params`, say). */
export function paramsRoot(arrays: Map<string, RefArray>, where: string): string {
  for (const root of PARAM_ROOTS)
    if (arrays.has(`${root}head/kernel`) || arrays.has(`${root}embedding/kernel`)) return root;
  const sample = [...arrays.keys()].slice(0, 5).join(', ');
  throw new CheckpointError(
    `${where}: no ViT parameters found (no head/kernel or embedding/kernel under ${PARAM_ROOTS.map((r) => `'${r}'`).join(', ')}); its first arrays: ${sample}`,
  );
}

const BLOCK = /^Encoder\/encoderblock_(\d+)\//;

function shapeOf(arrays: Map<string, RefArray>, key: string, where: string): number[] {
  const a = arrays.get(key);
  if (!a) throw new CheckpointError(`${where}: missing ${key}`);
  return a.shape;
}

/** Reads the architecture off the names and shapes under `root`. */
export function inferArchitecture(arrays: Map<string, RefArray>, root: string, where: string): InferredArchitecture {
  const sub = new Map<string, RefArray>();
  for (const [k, v] of arrays) if (k.startsWith(root)) sub.set(k.slice(root.length), v);
  const s = (k: string) => shapeOf(sub, k, where);
  const emb = s('embedding/kernel');
  if (emb.length !== 4) throw new CheckpointError(`${where}: embedding/kernel must be (ph, pw, C, D), got (${emb})`);
  const [ph, pw, channels, hidden] = emb as [number, number, number, number];
  if (ph !== pw) throw new CheckpointError(`${where}: non-square patches ${ph}×${pw} are not supported`);
  const pos = s('Encoder/posembed_input/pos_embedding');
  const readout = sub.has('cls') ? 'token' : 'gap';
  const T = pos[1] ?? 0;
  const g = Math.round(Math.sqrt(T - (readout === 'token' ? 1 : 0)));
  if (pos.length !== 3 || pos[2] !== hidden || g * g !== T - (readout === 'token' ? 1 : 0)) {
    throw new CheckpointError(`${where}: pos_embedding (${pos}) is not (1, tokens, ${hidden}) for a square patch grid`);
  }
  const blocks = new Set<number>();
  for (const k of sub.keys()) {
    const m = BLOCK.exec(k);
    if (m) blocks.add(Number(m[1]));
  }
  const depth = blocks.size;
  if (depth === 0) throw new CheckpointError(`${where}: no Encoder/encoderblock_i found`);
  for (let b = 0; b < depth; b++)
    if (!blocks.has(b))
      throw new CheckpointError(
        `${where}: encoderblock_${b} is missing (blocks found: ${[...blocks].sort((x, y) => x - y)})`,
      );
  const q = s('Encoder/encoderblock_0/SelfAttention/query/kernel');
  if (q.length !== 3 || q[0] !== hidden)
    throw new CheckpointError(`${where}: SelfAttention/query/kernel must be (D, heads, D/heads), got (${q})`);
  const heads = q[1]!;
  const moeBlocks: number[] = [];
  let numExperts: number | null = null,
    members: number | null = null,
    mlpDim: number | null = null;
  for (let b = 0; b < depth; b++) {
    const p = `Encoder/encoderblock_${b}/`;
    if (sub.has(`${p}Moe/Mlp/Dense_0/kernel`)) {
      moeBlocks.push(b);
      const w1 = s(`${p}Moe/Mlp/Dense_0/kernel`);
      const router = s(`${p}Moe/Router/dense/kernel`);
      const E = w1[0]!;
      if (numExperts !== null && E !== numExperts)
        throw new CheckpointError(
          `${where}: MoE blocks disagree on the number of experts (${numExperts} vs ${E} in block ${b})`,
        );
      numExperts = E;
      const m = router.length === 3 ? router[1]! : 1;
      if (router.length === 3 ? router[1]! * router[2]! !== E : router[1] !== E) {
        throw new CheckpointError(`${where}: ${p}Moe/Router/dense/kernel (${router}) does not route to ${E} experts`);
      }
      if (members !== null && m !== members)
        throw new CheckpointError(`${where}: MoE blocks disagree on the ensemble size`);
      members = m;
      mlpDim ??= w1[2]!;
    } else {
      mlpDim ??= s(`${p}Mlp/Dense_0/kernel`)[1]!;
    }
  }
  const head = s('head/kernel');
  const preLogits = sub.has('pre_logits/kernel') ? s('pre_logits/kernel')[1]! : null;
  const type = moeBlocks.length === 0 ? 'vit' : members !== null && members > 1 ? 'e3' : 'vmoe';
  return {
    type,
    imageSize: g * ph,
    channels,
    patchSize: ph,
    hidden,
    depth,
    heads,
    mlpDim: mlpDim!,
    numClasses: head[1]!,
    readout,
    preLogits,
    moeBlocks,
    numExperts,
    members: type === 'e3' ? members : null,
  };
}

/** Our parameter name → the reference's path (relative to the params root), for a model config. */
export function referenceNames(cfg: ModelConfig): Map<string, string> {
  const names = new Map<string, string>();
  for (const name of paramSpecs(cfg).keys()) {
    let ref: string | undefined;
    const m = /^block(\d+)\/(.*)$/.exec(name);
    if (m) {
      const b = `Encoder/encoderblock_${m[1]}/`;
      const rest = m[2]!;
      const table: Record<string, string> = {
        'ln1/scale': 'LayerNorm_0/scale',
        'ln1/bias': 'LayerNorm_0/bias',
        'ln2/scale': 'LayerNorm_1/scale',
        'ln2/bias': 'LayerNorm_1/bias',
        'mlp/fc1/kernel': 'Mlp/Dense_0/kernel',
        'mlp/fc1/bias': 'Mlp/Dense_0/bias',
        'mlp/fc2/kernel': 'Mlp/Dense_1/kernel',
        'mlp/fc2/bias': 'Mlp/Dense_1/bias',
        'moe/w1': 'Moe/Mlp/Dense_0/kernel',
        'moe/b1': 'Moe/Mlp/Dense_0/bias',
        'moe/w2': 'Moe/Mlp/Dense_1/kernel',
        'moe/b2': 'Moe/Mlp/Dense_1/bias',
        'moe/router/kernel': 'Moe/Router/dense/kernel',
      };
      const attn = /^attn\/(query|key|value|out)\/(kernel|bias)$/.exec(rest);
      ref = attn ? `${b}SelfAttention/${attn[1]}/${attn[2]}` : table[rest] ? b + table[rest] : undefined;
    } else {
      const top: Record<string, string> = {
        'embed/kernel': 'embedding/kernel',
        'embed/bias': 'embedding/bias',
        cls: 'cls',
        pos: 'Encoder/posembed_input/pos_embedding',
        'norm/scale': 'Encoder/encoder_norm/scale',
        'norm/bias': 'Encoder/encoder_norm/bias',
        'prelogits/kernel': 'pre_logits/kernel',
        'prelogits/bias': 'pre_logits/bias',
        'head/kernel': 'head/kernel',
        'head/bias': 'head/bias',
      };
      ref = top[name];
    }
    if (ref === undefined) throw new Error(`referenceNames: no reference name for parameter ${name}`);
    names.set(name, ref);
  }
  return names;
}

/** The reference's shape of each of our parameters (attention and embedding kernels keep their split axes). */
export function referenceShape(name: string, ours: number[], cfg: ModelConfig): number[] {
  const Dh = cfg.hidden / cfg.heads;
  if (/attn\/(query|key|value)\/kernel$/.test(name)) return [cfg.hidden, cfg.heads, Dh];
  if (/attn\/(query|key|value)\/bias$/.test(name)) return [cfg.heads, Dh];
  if (/attn\/out\/kernel$/.test(name)) return [cfg.heads, Dh, cfg.hidden];
  if (name === 'embed/kernel') return [cfg.patchSize, cfg.patchSize, cfg.channels, cfg.hidden];
  if (name === 'cls' || name === 'pos') return [1, ...ours];
  return ours;
}

/** The model config for an inferred architecture plus routing settings; group size checked against the tokens. */
export function modelConfigFor(arch: InferredArchitecture, routing: ReferenceRouting): Record<string, unknown> {
  const model: Record<string, unknown> = {
    type: arch.type,
    imageSize: arch.imageSize,
    channels: arch.channels,
    patchSize: arch.patchSize,
    hidden: arch.hidden,
    depth: arch.depth,
    heads: arch.heads,
    mlpDim: arch.mlpDim,
    numClasses: arch.numClasses,
    readout: arch.readout,
    preLogits: arch.preLogits,
  };
  if (arch.type === 'vit') return model;
  const M = arch.members ?? 1;
  const T = (arch.imageSize / arch.patchSize) ** 2 + (arch.readout === 'token' ? 1 : 0);
  const moe: Record<string, unknown> = {
    layers: { placement: 'list', list: arch.moeBlocks },
    numExperts: arch.numExperts,
    k: routing.numSelectedExperts ?? (arch.type === 'e3' ? 1 : 2),
  };
  if (routing.capacityFactor !== undefined) moe.capacityFactor = routing.capacityFactor;
  if (routing.batchPriority !== undefined) moe.batchPriority = routing.batchPriority;
  if (routing.groupSize !== undefined) {
    const perImage = T * M;
    if (!Number.isInteger(routing.groupSize) || routing.groupSize % perImage !== 0) {
      throw new UsageError(
        `--group-size ${routing.groupSize}: a routing group must hold whole images, a multiple of ${perImage} tokens (${T} tokens per image${M > 1 ? ` × ${M} members` : ''})`,
      );
    }
    moe.groupImages = routing.groupSize / perImage;
  }
  model.moe = moe;
  if (arch.type === 'e3') model.ensemble = { members: M, layout: 'repeat' };
  return model;
}

/** An imported model: its experiment config and parameters by our names (float32). */
export interface ImportedParams {
  config: ExperimentConfig;
  arch: InferredArchitecture;
  params: Map<string, { shape: number[]; data: Float32Array }>;
  /** Reference paths that were not used (optimizer state outside the params root is not counted). */
  unused: string[];
  /** dtypes found among the parameters, e.g. ['bfloat16']. */
  dtypes: string[];
}

/**
 * Maps a reference tree onto our parameters. Missing keys, keys we do not know and shapes that do not fit are
 * collected and reported together in one error.
 */
export function importReferenceParams(
  arrays: Map<string, RefArray>,
  where: string,
  routing: ReferenceRouting = {},
  overrides: (raw: Record<string, unknown>) => void = () => {},
): ImportedParams {
  const root = paramsRoot(arrays, where);
  const arch = inferArchitecture(arrays, root, where);
  const model = modelConfigFor(arch, routing);
  const groupImages = (model.moe as { groupImages?: number } | undefined)?.groupImages ?? 8;
  const raw: Record<string, unknown> = {
    name: `imported:${where.split('/').pop()}`,
    model,
    // a batch that holds whole routing groups, so the saved config is valid as it is
    train: { batchSize: groupImages * Math.max(1, Math.ceil(64 / groupImages)) },
    eval: { batchSize: groupImages * Math.max(1, Math.ceil(256 / groupImages)) },
  };
  overrides(raw);
  const config = parseExperiment(raw, `${where} (inferred config)`);
  const names = referenceNames(config.model);
  const problems: string[] = [];
  const params = new Map<string, { shape: number[]; data: Float32Array }>();
  const used = new Set<string>();
  const dtypes = new Set<string>();
  for (const [name, spec] of paramSpecs(config.model)) {
    const refName = root + names.get(name)!;
    const a = arrays.get(refName);
    const want = referenceShape(name, spec.shape, config.model);
    if (!a) {
      problems.push(`missing ${refName} (${want})`);
      continue;
    }
    used.add(refName);
    if (a.shape.join(',') !== want.join(',')) {
      problems.push(`${refName} is (${a.shape}), expected (${want})`);
      continue;
    }
    if (!['float32', 'bfloat16', 'float16', 'float64'].includes(a.dtype)) {
      problems.push(`${refName} has dtype ${a.dtype}, not a float type`);
      continue;
    }
    dtypes.add(a.dtype);
    params.set(name, { shape: spec.shape, data: toFloat32(a.dtype, a.bytes, refName) });
  }
  const unused = [...arrays.keys()].filter((k) => k.startsWith(root) && !used.has(k));
  // Every array under the params root must be one of ours: an unknown name is a layer this model does not have.
  const unknown = unused;
  if (unknown.length)
    problems.push(
      `unknown key${unknown.length > 1 ? 's' : ''} ${unknown.slice(0, 8).join(', ')}${unknown.length > 8 ? ` … and ${unknown.length - 8} more` : ''}`,
    );
  if (problems.length) {
    throw new CheckpointError(`${where}: does not map onto a ${arch.type} model: ${problems.slice(0, 12).join('; ')}`);
  }
  return { config, arch, params, unused, dtypes: [...dtypes].sort() };
}
