/**
 * SVG → PNG through resvg (a Rust renderer with prebuilt binaries on npm), and a
 * writer that puts a figure next to the tables as name.svg and name.png.
 *
 * resvg is loaded lazily: on a platform without a prebuilt binary the figures are
 * still written as SVG, with a warning instead of a crash at import time.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { DataError, UsageError, VmoeError } from '../util/errors.js';
import { writeFileWhole } from '../util/output-dir.js';

export interface PngOptions {
  /** Pixels per SVG user unit (default 2: print-sharp figures; 1 gives the SVG's own size). */
  scale?: number;
  /** CSS colour painted under the figure (default: none; our figures paint their own white background). */
  background?: string;
  /**
   * Family used for the generic `sans-serif` the figure writers ask for. resvg does not map generic
   * families through fontconfig, so without this it falls back to the first system font, often a serif.
   */
  sansSerifFamily?: string;
}

type ResvgModule = typeof import('@resvg/resvg-js');

let resvg: ResvgModule | null | undefined;
let resvgError = '';

function loadResvg(): ResvgModule | null {
  if (resvg === undefined) {
    try {
      resvg = createRequire(import.meta.url)('@resvg/resvg-js') as ResvgModule;
    } catch (e) {
      resvg = null;
      resvgError = (e as Error).message.split('\n')[0]!;
    }
  }
  return resvg;
}

/** Whether PNGs can be rendered here (the resvg native binary loaded). */
export function pngAvailable(): boolean {
  return loadResvg() !== null;
}

/** Reads width and height from the root <svg> element (the figure writers always set both). */
export function svgSize(svg: string): { width: number; height: number } {
  const open = /<svg\b[^>]*>/.exec(svg)?.[0];
  if (!open) throw new DataError('svgSize: no <svg> element');
  const num = (name: string) => {
    const m = new RegExp(`\\s${name}="([0-9.]+)(px)?"`).exec(open);
    if (!m) throw new DataError(`svgSize: the <svg> element has no numeric ${name} attribute`);
    return Number(m[1]);
  };
  return { width: num('width'), height: num('height') };
}

export function svgToPng(svg: string, opts: PngOptions = {}): Buffer {
  const scale = opts.scale ?? 2;
  if (!(scale > 0 && Number.isFinite(scale)))
    throw new UsageError(`svgToPng: scale must be a positive number, got ${scale}`);
  const lib = loadResvg();
  if (!lib)
    throw new VmoeError(`svgToPng: @resvg/resvg-js could not be loaded (${resvgError})`, {
      hint: 'install it (npm install @resvg/resvg-js) or write SVG only',
    });
  const family = opts.sansSerifFamily ?? 'DejaVu Sans';
  const r = new lib.Resvg(svg, {
    fitTo: { mode: 'zoom', value: scale },
    font: { loadSystemFonts: true, defaultFontFamily: family, sansSerifFamily: family },
    ...(opts.background ? { background: opts.background } : {}),
    logLevel: 'off',
  });
  return r.render().asPng();
}

/**
 * Writes dir/name.svg and dir/name.png (PNG skipped, with a warning on stderr, when resvg is
 * unavailable). Returns the paths written.
 */
export function writeFigure(dir: string, name: string, svg: string, opts: PngOptions = {}): string[] {
  if (!/^[\w.-]+$/.test(name))
    throw new UsageError(`writeFigure: figure name "${name}" must be letters, digits, '.', '_' or '-'`);
  fs.mkdirSync(dir, { recursive: true });
  const svgPath = path.join(dir, `${name}.svg`);
  writeFileWhole(svgPath, svg);
  if (!pngAvailable()) {
    process.stderr.write(`[vmoe] ${name}.png not written: @resvg/resvg-js unavailable (${resvgError})\n`);
    return [svgPath];
  }
  const pngPath = path.join(dir, `${name}.png`);
  writeFileWhole(pngPath, svgToPng(svg, opts));
  return [svgPath, pngPath];
}
