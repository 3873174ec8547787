/**
 * `vmoe export --format vmoe|npz`: one of our checkpoints in the reference implementation's formats, so a model
 * trained or fine-tuned here goes back to the reference code. The tree is `{params: …}` with the reference's names
 * and shapes (reference-map.ts); `.npz` files of dense ViTs use vision_transformer's names (what its loader and
 * the V-MoE reference's `initialize_from_vit` read). bfloat16 on request (rounded to nearest even).
 */
import path from 'node:path';
import { zipSync } from 'fflate';
import { UsageError } from '../util/errors.js';
import { checkOutputDir, writeFileWhole } from '../util/output-dir.js';
import { encodeNpy, float32Bytes, floatToBfloat16Bits } from '../util/npy.js';
import { parseExperiment } from '../config/experiment.js';
import { paramSpecs } from '../vmoe/params.js';
import { assertFiniteCheckpoint, loadCheckpoint } from './format.js';
import { resolveCheckpoint } from './load.js';
import { writeReferenceCheckpoint, type RefArray } from './reference-format.js';
import { referenceNames, referenceShape } from './reference-map.js';

/** Options of `exportReference`: the format, the element type and (vmoe) the number of shards. */
export interface ExportReferenceOptions {
  format: 'vmoe' | 'npz';
  dtype?: 'float32' | 'bfloat16';
  shards?: number;
}

/** vision_transformer's names for a dense ViT's blocks (LayerNorm_0, attention _1, LayerNorm_2, MLP _3). */
function vitName(refName: string): string {
  return refName
    .replace(/^Encoder\//, 'Transformer/')
    .replace('/SelfAttention/', '/MultiHeadDotProductAttention_1/')
    .replace('/LayerNorm_1/', '/LayerNorm_2/')
    .replace('/Mlp/', '/MlpBlock_3/');
}

/**
 * Writes the checkpoint `ckpt` (file, checkpoints/ folder or run folder) to `out`: for `vmoe` the prefix of
 * `OUT.index` + `OUT.data-…`, for `npz` the file `OUT` (`.npz` added when missing). Returns the files written.
 */
export function exportReference(ckpt: string, out: string, opts: ExportReferenceOptions): string[] {
  const dtype = opts.dtype ?? 'float32';
  if (opts.shards !== undefined && (!Number.isInteger(opts.shards) || opts.shards < 1)) {
    throw new UsageError(`--shards: expected a positive integer, got ${opts.shards}`);
  }
  checkOutputDir(path.dirname(path.resolve(out)), '--out', { create: true });
  // Host arrays straight from the file: no tensors, so no engine is needed.
  const file0 = resolveCheckpoint(ckpt);
  const ck = loadCheckpoint(file0);
  assertFiniteCheckpoint(ck);
  const cfg = parseExperiment(ck.meta.config, `${file0} (saved config)`).model;
  const names = referenceNames(cfg);
  const arrays = new Map<string, RefArray>();
  for (const [name, spec] of paramSpecs(cfg)) {
    const t = ck.tensors[`params/${name}`];
    if (!t || t.shape.join(',') !== spec.shape.join(',')) {
      throw new UsageError(`${file0}: parameter ${name} is missing or misshapen`);
    }
    const v = { shape: spec.shape, data: t.data as Float32Array };
    const shape = referenceShape(name, v.shape, cfg);
    const bytes =
      dtype === 'bfloat16' ? new Uint8Array(floatToBfloat16Bits(v.data).buffer) : float32Bytes(v.data).slice();
    const refName = names.get(name)!;
    const key = opts.format === 'npz' ? (cfg.type === 'vit' ? vitName(refName) : refName) : `params/${refName}`;
    arrays.set(key, { dtype, shape, bytes });
  }
  if (opts.format === 'vmoe') return writeReferenceCheckpoint(path.resolve(out), arrays, { shards: opts.shards ?? 1 });
  const file = out.endsWith('.npz') ? out : `${out}.npz`;
  const entries: Record<string, Uint8Array> = {};
  for (const [k, a] of arrays) entries[`${k}.npy`] = encodeNpy(a.dtype, a.shape, a.bytes);
  writeFileWhole(file, zipSync(entries, { level: 0 }));
  return [file];
}
