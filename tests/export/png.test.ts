import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PNG } from 'pngjs';
import { afterAll, describe, expect, it } from 'vitest';
import { reliabilityDiagramSvg } from '../../src/export/eval-figures.js';
import { pngAvailable, svgSize, svgToPng, writeFigure } from '../../src/export/png.js';

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
/** Width and height from the IHDR chunk, which always follows the signature (bytes 16–23, big-endian). */
const ihdrSize = (png: Buffer) => ({ width: png.readUInt32BE(16), height: png.readUInt32BE(20) });

// a white 40×30 canvas with a red square at (10, 5)–(20, 15) and a blue one at (25, 15)–(35, 25)
const squares =
  '<svg xmlns="http://www.w3.org/2000/svg" width="40" height="30" viewBox="0 0 40 30">' +
  '<rect x="0" y="0" width="40" height="30" fill="white"/>' +
  '<rect x="10" y="5" width="10" height="10" fill="#ff0000"/><rect x="25" y="15" width="10" height="10" fill="#0000ff"/></svg>';

describe('svgSize', () => {
  it.each([
    ['<svg xmlns="http://www.w3.org/2000/svg" width="640" height="400">', { width: 640, height: 400 }],
    ['<?xml version="1.0"?>\n<svg height="12.5px" width="7">', { width: 7, height: 12.5 }],
  ])('%s', (svg, want) => {
    expect(svgSize(svg)).toEqual(want);
  });
  it('names what is missing', () => {
    expect(() => svgSize('<g/>')).toThrow(/no <svg> element/);
    expect(() => svgSize('<svg width="100%" height="3">')).toThrow(/numeric width/);
  });
});

describe('svgToPng', () => {
  it('resvg is available here (a declared dependency)', () => {
    expect(pngAvailable()).toBe(true);
  });

  it.each([1, 2, 3])('scale %i: PNG signature, and IHDR size = scale × the SVG size', (scale) => {
    const png = svgToPng(squares, { scale });
    expect([...png.subarray(0, 8)]).toEqual(SIGNATURE);
    expect(png.toString('latin1', 12, 16)).toBe('IHDR');
    expect(ihdrSize(png)).toEqual({ width: 40 * scale, height: 30 * scale });
  });

  it('default scale is 2', () => {
    expect(ihdrSize(svgToPng(squares))).toEqual({ width: 80, height: 60 });
  });

  it('paints the shapes where the SVG puts them (decoded pixels)', () => {
    const img = PNG.sync.read(svgToPng(squares, { scale: 1 }));
    const at = (x: number, y: number) => [...img.data.subarray(4 * (y * img.width + x), 4 * (y * img.width + x) + 4)];
    expect(at(15, 10)).toEqual([255, 0, 0, 255]);
    expect(at(30, 20)).toEqual([0, 0, 255, 255]);
    expect(at(2, 2)).toEqual([255, 255, 255, 255]);
    expect(at(15, 20)).toEqual([255, 255, 255, 255]);
  });

  it('a figure renders at its declared size, identically twice (deterministic)', () => {
    const svg = reliabilityDiagramSvg({
      bins: [
        { count: 5, accuracy: 0.6, confidence: 0.7 },
        { count: 0, accuracy: NaN, confidence: NaN },
      ],
      ece: 0.1,
      subtitle: 'test',
    });
    const { width, height } = svgSize(svg);
    const a = svgToPng(svg, { scale: 1 }),
      b = svgToPng(svg, { scale: 1 });
    expect(ihdrSize(a)).toEqual({ width, height });
    expect(a.equals(b)).toBe(true);
  });

  // resvg draws text only with a system font to hand; a bare CI image may have none
  const fontDirs = ['/usr/share/fonts', '/usr/local/share/fonts', '/System/Library/Fonts', 'C:\\Windows\\Fonts'];
  it.skipIf(!fontDirs.some((d) => fs.existsSync(d)))('draws the title text (with system fonts present)', () => {
    const svg = reliabilityDiagramSvg({ bins: [{ count: 5, accuracy: 0.6, confidence: 0.7 }], ece: 0.1 });
    const img = PNG.sync.read(svgToPng(svg, { scale: 1 }));
    let dark = 0;
    for (let i = 0; i < img.width * 40 * 4; i += 4)
      if (img.data[i]! < 128 && img.data[i + 1]! < 128 && img.data[i + 2]! < 128) dark++;
    expect(dark).toBeGreaterThan(50); // the title row (top 40 px) holds dark glyph pixels
  });

  it('rejects a bad scale', () => {
    expect(() => svgToPng(squares, { scale: 0 })).toThrow(/scale must be a positive number/);
  });
});

describe('writeFigure', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmoe-fig-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('writes name.svg (the text given) and name.png (a PNG of it) into a new folder', () => {
    const out = path.join(dir, 'figures');
    const written = writeFigure(out, 'squares', squares, { scale: 1 });
    expect(written).toEqual([path.join(out, 'squares.svg'), path.join(out, 'squares.png')]);
    expect(fs.readFileSync(written[0]!, 'utf8')).toBe(squares);
    expect(ihdrSize(fs.readFileSync(written[1]!))).toEqual({ width: 40, height: 30 });
  });

  it('rejects names that are not plain file stems', () => {
    expect(() => writeFigure(dir, '../x', squares)).toThrow(/figure name "..\/x"/);
  });
});
