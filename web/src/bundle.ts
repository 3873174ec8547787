/**
 * Loading a web bundle (written by `vmoe export --format web`) from a URL or from files the user picked, into a
 * VisionMoE built by the toolkit's own model code. The format and its checks are src/export/web-bundle-format.ts.
 */
import { parseWebManifest, unpackWebTensors, type WebManifest } from '../../src/export/web-bundle-format.js';
import { VisionMoE } from '../../src/vmoe/model.js';

/** A bundle in memory: its manifest, the model, and its sample images (n, H, W, C) uint8 if it has any. */
export interface LoadedBundle {
  manifest: WebManifest;
  model: VisionMoE;
  samples: Uint8Array | null;
  /** Where it came from (URL or file names), for the page. */
  source: string;
}

/** Reads the bundle's files with `read(name)` (relative names from the manifest) and builds the model. */
async function loadWith(read: (name: string) => Promise<ArrayBuffer>, source: string): Promise<LoadedBundle> {
  const text = new TextDecoder().decode(await read('manifest.json'));
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`${source}: manifest.json is not JSON (${(e as Error).message})`);
  }
  const manifest = parseWebManifest(json, `${source.replace(/\/$/, '')}/manifest.json`);
  const shards = await Promise.all(manifest.shards.map(async (s) => new Uint8Array(await read(s.file))));
  const model = VisionMoE.fromValues(manifest.model, unpackWebTensors(manifest, shards));
  const samples = manifest.samples ? new Uint8Array(await read(manifest.samples.file)) : null;
  return { manifest, model, samples, source };
}

/** A bundle served at `base` (a folder URL, with or without the trailing slash, or its manifest.json). */
export function loadBundleFromUrl(base: string): Promise<LoadedBundle> {
  const folder = new URL(base.replace(/manifest\.json$/, '').replace(/\/?$/, '/'), document.baseURI);
  return loadWith(async (name) => {
    const r = await fetch(new URL(name, folder));
    if (!r.ok) throw new Error(`${new URL(name, folder).href}: HTTP ${r.status}`);
    return r.arrayBuffer();
  }, shortUrl(folder));
}

/** A URL as the page shows it: relative to the page when on the same origin, else whole. */
function shortUrl(u: URL): string {
  const page = new URL('.', document.baseURI);
  return u.href.startsWith(page.href) ? u.href.slice(page.href.length) : u.href;
}

/** A bundle from picked files (manifest.json, its shards and samples, matched by file name). */
export function loadBundleFromFiles(files: FileList | File[]): Promise<LoadedBundle> {
  const byName = new Map<string, File>();
  for (const f of Array.from(files)) byName.set(f.name, f);
  return loadWith(async (name) => {
    const f = byName.get(name);
    if (!f) throw new Error(`pick ${name} too: select every file of the bundle folder (manifest.json, *.bin)`);
    return f.arrayBuffer();
  }, 'picked files');
}
