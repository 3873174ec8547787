/**
 * The web bundle's format (docs/web.md): a `manifest.json` with the resolved model config, class names, pixel
 * scaling, the checkpoint's SHA-256 and a table of tensors, plus binary shards of little-endian float32 weights
 * (and optionally a few uint8 test images). This module holds the format only — types, validation, the layout of
 * tensors in shards and their decoding — with no Node imports, so the web page (web/) parses bundles with the same
 * code the exporter writes them with.
 */
import { ModelSchema, checkModelConfig, type ModelConfig } from '../vmoe/config.js';
import { CheckpointError } from '../util/errors.js';

/** `format` field of every bundle manifest. */
export const WEB_BUNDLE_FORMAT = 'vmoe-web-bundle';
/** Version of the manifest layout this code reads and writes. */
export const WEB_BUNDLE_VERSION = 1;
/** Largest weight shard in bytes (4 MiB, as tfjs's own weight shards); a tensor may span two shards. */
export const WEB_SHARD_BYTES = 4 * 1024 * 1024;

/** One tensor of the bundle: its parameter name, shape, and byte range in the concatenated shards. */
export interface WebTensorEntry {
  name: string;
  shape: number[];
  /** Byte offset into the shards laid end to end. */
  offset: number;
}

/** Sample images shipped with the bundle: (n, H, W, C) uint8 in one file, with their labels. */
export interface WebSamples {
  file: string;
  n: number;
  labels: number[];
  /** Index of each image in the data set split it came from. */
  indices: number[];
  split: string;
}

/** What `manifest.json` holds. */
export interface WebManifest {
  format: typeof WEB_BUNDLE_FORMAT;
  version: number;
  /** Display name (the run folder's or checkpoint's). */
  name: string;
  model: ModelConfig;
  classNames: string[];
  /** How pixels 0..255 become model inputs: `minus1to1` is x/127.5 − 1, `zero1` is x/255. */
  pixelScale: 'minus1to1' | 'zero1';
  dataset: string;
  checkpoint: { file: string; sha256: string; step: number };
  /** Shard files in order; their bytes laid end to end hold every tensor as float32 little-endian. */
  shards: { file: string; bytes: number }[];
  tensors: WebTensorEntry[];
  samples?: WebSamples;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Checks a parsed `manifest.json` (from `source`, for messages) and returns it typed; a CheckpointError names the fault. */
export function parseWebManifest(json: unknown, source: string): WebManifest {
  const bad = (why: string): never => {
    throw new CheckpointError(`${source}: not a vmoe web bundle manifest: ${why}`, {
      hint: 'export one with `vmoe export --checkpoint CKPT --format web --out DIR`',
    });
  };
  if (!isObj(json)) return bad('expected a JSON object');
  if (json.format !== WEB_BUNDLE_FORMAT) return bad(`format is ${JSON.stringify(json.format)}`);
  if (json.version !== WEB_BUNDLE_VERSION)
    return bad(`version ${String(json.version)} (this reader knows ${WEB_BUNDLE_VERSION})`);
  const parsed = ModelSchema.safeParse(json.model);
  if (!parsed.success) return bad(`model config: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  const model = parsed.data;
  checkModelConfig(model);
  const { classNames, shards, tensors } = json;
  if (
    !Array.isArray(classNames) ||
    classNames.length !== model.numClasses ||
    !classNames.every((c) => typeof c === 'string')
  )
    return bad(`classNames must be ${model.numClasses} strings`);
  if (json.pixelScale !== 'minus1to1' && json.pixelScale !== 'zero1')
    return bad('pixelScale must be minus1to1 or zero1');
  if (
    !Array.isArray(shards) ||
    !shards.every((s) => isObj(s) && typeof s.file === 'string' && Number.isInteger(s.bytes))
  )
    return bad('shards must be a list of { file, bytes }');
  if (
    !Array.isArray(tensors) ||
    !tensors.every((t) => isObj(t) && typeof t.name === 'string' && Array.isArray(t.shape))
  )
    return bad('tensors must be a list of { name, shape, offset }');
  const ck = json.checkpoint;
  if (!isObj(ck) || typeof ck.sha256 !== 'string') return bad('checkpoint.sha256 missing');
  return json as unknown as WebManifest;
}

/** Bytes a tensor of `shape` takes as float32. */
export function tensorBytes(shape: readonly number[]): number {
  return 4 * shape.reduce((a, b) => a * b, 1);
}

/**
 * Lays `tensors` end to end and cuts the bytes into shards of at most `shardBytes`: the manifest's tensor table
 * and the shard sizes, plus the shards' bytes (float32 little-endian).
 */
export function packWebTensors(
  tensors: { name: string; shape: number[]; data: Float32Array }[],
  shardBytes = WEB_SHARD_BYTES,
): { entries: WebTensorEntry[]; shards: Uint8Array[] } {
  const total = tensors.reduce((s, t) => s + tensorBytes(t.shape), 0);
  const all = new Uint8Array(total);
  const view = new DataView(all.buffer);
  const entries: WebTensorEntry[] = [];
  let offset = 0;
  for (const t of tensors) {
    if (t.data.length * 4 !== tensorBytes(t.shape))
      throw new CheckpointError(`tensor ${t.name}: ${t.data.length} values for shape [${t.shape}]`);
    entries.push({ name: t.name, shape: t.shape.slice(), offset });
    for (let i = 0; i < t.data.length; i++) view.setFloat32(offset + 4 * i, t.data[i]!, true);
    offset += 4 * t.data.length;
  }
  const shards: Uint8Array[] = [];
  for (let s = 0; s < total; s += shardBytes) shards.push(all.subarray(s, Math.min(total, s + shardBytes)));
  if (shards.length === 0) shards.push(new Uint8Array(0));
  return { entries, shards };
}

/**
 * The bundle's tensors from its shards (in manifest order), as the named host arrays `VisionMoE.fromValues`
 * takes. Shard sizes and tensor ranges are checked against the manifest.
 */
export function unpackWebTensors(
  manifest: WebManifest,
  shards: Uint8Array[],
): Map<string, { shape: number[]; data: Float32Array }> {
  if (shards.length !== manifest.shards.length)
    throw new CheckpointError(
      `bundle ${manifest.name}: ${shards.length} shards given, the manifest lists ${manifest.shards.length}`,
    );
  let total = 0;
  manifest.shards.forEach((s, i) => {
    const got = shards[i]!.byteLength;
    if (got !== s.bytes)
      throw new CheckpointError(`bundle shard ${s.file} has ${got} bytes, the manifest says ${s.bytes}`);
    total += got;
  });
  const all = new Uint8Array(total);
  let at = 0;
  for (const s of shards) {
    all.set(s, at);
    at += s.byteLength;
  }
  const view = new DataView(all.buffer);
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const t of manifest.tensors) {
    const bytes = tensorBytes(t.shape);
    if (!Number.isInteger(t.offset) || t.offset < 0 || t.offset + bytes > total)
      throw new CheckpointError(
        `bundle tensor ${t.name} lies outside the shards (${t.offset}+${bytes} > ${total} bytes)`,
      );
    const data = new Float32Array(bytes / 4);
    for (let i = 0; i < data.length; i++) data[i] = view.getFloat32(t.offset + 4 * i, true);
    out.set(t.name, { shape: t.shape.slice(), data });
  }
  return out;
}
