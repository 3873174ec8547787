/** A preview grid of corrupted images: rows = corruptions, columns = severities, a few images per cell. */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { PNG } from 'pngjs';
import { DataError } from '../util/errors.js';
import { writeFileWhole } from '../util/output-dir.js';

export interface PreviewRow {
  /** One (k, H, W, C) uint8 block per column (severity), all with the same k. */
  cells: Uint8Array[];
}

export interface PreviewLayout {
  h: number;
  w: number;
  c: number;
  /** Images per cell. */
  k: number;
  /** Integer magnification (default 2). */
  zoom?: number;
}

const GAP_IMAGE = 1;
const GAP_CELL = 4;
const GAP_RGB = [70, 80, 110];

/** Builds the grid as (height, width, 4) RGBA; grey images are shown as grey, RGB as colour, other C by channel 0. */
export function previewGrid(
  rows: PreviewRow[],
  layout: PreviewLayout,
): { rgba: Uint8Array; width: number; height: number } {
  const { h, w, c, k } = layout;
  const zoom = layout.zoom ?? 2;
  const cols = rows[0]?.cells.length ?? 0;
  const cellW = k * w + (k - 1) * GAP_IMAGE;
  const width = (GAP_CELL + cols * (cellW + GAP_CELL)) * zoom;
  const height = (GAP_CELL + rows.length * (h + GAP_CELL)) * zoom;
  const rgba = new Uint8Array(width * height * 4);
  for (let i = 0; i < width * height; i++) rgba.set([GAP_RGB[0]!, GAP_RGB[1]!, GAP_RGB[2]!, 255], 4 * i);
  rows.forEach((row, r) => {
    if (row.cells.length !== cols)
      throw new DataError(`previewGrid: row ${r} has ${row.cells.length} cells, row 0 has ${cols}`);
    row.cells.forEach((cell, col) => {
      if (cell.length !== k * h * w * c)
        throw new DataError(`previewGrid: row ${r} cell ${col} holds ${cell.length} values, expected ${k * h * w * c}`);
      for (let j = 0; j < k; j++) {
        const x0 = GAP_CELL + col * (cellW + GAP_CELL) + j * (w + GAP_IMAGE);
        const y0 = GAP_CELL + r * (h + GAP_CELL);
        for (let y = 0; y < h; y++) {
          for (let x = 0; x < w; x++) {
            const base = ((j * h + y) * w + x) * c;
            const px =
              c === 3 ? [cell[base]!, cell[base + 1]!, cell[base + 2]!] : [cell[base]!, cell[base]!, cell[base]!];
            for (let zy = 0; zy < zoom; zy++) {
              for (let zx = 0; zx < zoom; zx++) {
                const o = (((y0 + y) * zoom + zy) * width + (x0 + x) * zoom + zx) * 4;
                rgba[o] = px[0]!;
                rgba[o + 1] = px[1]!;
                rgba[o + 2] = px[2]!;
              }
            }
          }
        }
      }
    });
  });
  return { rgba, width, height };
}

/** PNG file bytes of an RGBA image. */
export function encodePng(rgba: Uint8Array, width: number, height: number): Buffer {
  const png = new PNG({ width, height });
  png.data = Buffer.from(rgba.buffer, rgba.byteOffset, rgba.byteLength);
  return PNG.sync.write(png);
}

export function writePng(path: string, rgba: Uint8Array, width: number, height: number): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileWhole(path, encodePng(rgba, width, height));
}
