import { describe, expect, it } from 'vitest';
import {
  boxPlotSvg,
  boxStats,
  cellText,
  escapeXml,
  heatMapSvg,
  lineChartSvg,
  MAX_MARKERS,
  niceTicks,
  patchOverlaySvg,
  quantile,
  sequentialColour,
} from '../../src/export/figures.js';
import { checkSvg, count } from '../eval/svg-check.js';

describe("svg checker (the tests' own tool)", () => {
  it.each([
    ['<svg><g></svg>', /closes/],
    ['<svg><text>a & b</text></svg>', /unescaped &/],
    ['<svg x=1></svg>', /malformed tag/],
    ['<svg></svg><svg></svg>', /one <svg> root/],
    ['<svg><g>', /unclosed/],
  ])('rejects %s', (bad, pattern) => {
    expect(() => checkSvg(bad)).toThrow(pattern);
  });
  it('accepts entities and self-closing tags', () => {
    expect(checkSvg('<svg a="1"><text>x &lt; y &amp; z</text><rect/></svg>').map((e) => e.name)).toEqual([
      'svg',
      'text',
      'rect',
    ]);
  });
});

describe('helpers', () => {
  it.each([
    [0.00273, '0.00'],
    [0.278, '0.28'],
    [1, '1.00'],
    [12.34, '12.3'],
    [456.7, '457'],
    [NaN, '–'],
  ])('cellText(%f) = %s', (v, want) => {
    expect(cellText(v)).toBe(want);
  });
  it('escapeXml escapes the five XML specials', () => {
    expect(escapeXml(`<a b="c" d='e'>&`)).toBe('&lt;a b=&quot;c&quot; d=&apos;e&apos;&gt;&amp;');
  });
  it.each([
    { lo: 0, hi: 1, want: [0, 0.2, 0.4, 0.6, 0.8, 1] },
    { lo: 0, hi: 0.97, want: [0, 0.2, 0.4, 0.6, 0.8] },
    { lo: 3, hi: 47, want: [10, 20, 30, 40] },
    { lo: -1, hi: 1, want: [-1, -0.5, 0, 0.5, 1] },
  ])('niceTicks($lo, $hi) = 1/2/5 steps inside the range', ({ lo, hi, want }) => {
    expect(niceTicks(lo, hi, 5)).toEqual(want);
  });
  it.each([
    { v: [1, 2, 3, 4, 5], q1: 2, med: 3, q3: 4 },
    { v: [4, 1, 3, 2], q1: 1.75, med: 2.5, q3: 3.25 }, // (n−1)q interpolation: positions 0.75, 1.5, 2.25
    { v: [7], q1: 7, med: 7, q3: 7 },
  ])('boxStats of $v (type-7 quantiles)', ({ v, q1, med, q3 }) => {
    const s = boxStats(v);
    expect([s.q1, s.median, s.q3, s.min, s.max]).toEqual([q1, med, q3, Math.min(...v), Math.max(...v)]);
  });
  it('quantile of nothing is NaN', () => {
    expect(quantile([], 0.5)).toBeNaN();
  });
  it('colour scale runs from white to the end colour; NaN is grey', () => {
    expect(sequentialColour(0)).toBe('rgb(255,255,255)');
    expect(sequentialColour(1)).toBe('rgb(8,48,107)');
    expect(sequentialColour(2)).toBe('rgb(8,48,107)');
    expect(sequentialColour(NaN)).toBe('#bbbbbb');
  });
});

describe('line chart', () => {
  const spec = {
    title: 'A & B <test>',
    xLabel: 'x',
    yLabel: 'y',
    series: [
      {
        name: 'one <1>',
        points: [
          [0, 0],
          [1, 1],
          [0.5, 0.25],
        ] as [number, number][],
      },
      {
        name: 'two',
        points: [
          [0, 1],
          [1, NaN],
        ] as [number, number][],
      },
      { name: 'empty', points: [] as [number, number][] },
    ],
    width: 640,
    height: 400,
  };
  const svg = lineChartSvg(spec);
  const els = checkSvg(svg);
  it('is well formed and escapes labels', () => {
    expect(svg).toContain('A &amp; B &lt;test&gt;');
    expect(svg).toContain('one &lt;1&gt;');
  });
  it('draws one line per series with ≥ 2 finite points and one marker per finite point', () => {
    expect(count(els, 'polyline')).toBe(1);
    expect(count(els, 'circle')).toBe(3 + 1);
    expect(count(els, 'g', (e) => e.attrs.class === 'series')).toBe(3);
  });
  it('maps the x range onto the plot area in x order (left margin 64, right margin 166)', () => {
    const pts = els
      .find((e) => e.name === 'polyline')!
      .attrs.points!.split(' ')
      .map((p) => p.split(',').map(Number));
    expect(pts.map((p) => p[0])).toEqual([64, 64 + (640 - 64 - 166) / 2, 640 - 166]);
    // y: top margin 36, bottom 52 → y=1 at 36, y=0 at 348
    expect(pts.map((p) => p[1])).toEqual([348, 348 - 0.25 * 312, 36]);
  });
});

describe('heat map', () => {
  const values = [
    [0, 0.5],
    [1, NaN],
    [0.25, 0.75],
  ];
  const svg = heatMapSvg({
    title: 'h',
    values,
    rowLabels: ['a', 'b', 'c'],
    colLabels: ['x', 'y'],
    xLabel: 'X',
    yLabel: 'Y',
    domain: [0, 1],
  });
  const els = checkSvg(svg);
  it('has one titled cell per value, coloured on the domain', () => {
    const cells = els.filter((e) => e.name === 'rect' && e.attrs.width === '36' && e.attrs.height === '36');
    expect(cells).toHaveLength(6);
    expect(cells.map((c) => c.attrs.fill)).toEqual([0, 0.5, 1, NaN, 0.25, 0.75].map(sequentialColour));
    expect(count(els, 'title')).toBe(6);
  });
  it('refuses labels that do not match the matrix', () => {
    expect(() =>
      heatMapSvg({ title: '', values, rowLabels: ['a'], colLabels: ['x', 'y'], xLabel: '', yLabel: '' }),
    ).toThrow(/1 row labels for 3 rows/);
    expect(() =>
      heatMapSvg({ title: '', values: [[1], [1, 2]], rowLabels: ['a', 'b'], colLabels: ['x'], xLabel: '', yLabel: '' }),
    ).toThrow(/row 1 has 2 values/);
  });
});

describe('long series', () => {
  it('draw no markers beyond MAX_MARKERS points', () => {
    const pts = (n: number) => Array.from({ length: n }, (_, i) => [i, i % 7] as [number, number]);
    const els = checkSvg(
      lineChartSvg({
        title: '',
        xLabel: '',
        yLabel: '',
        series: [
          { name: 'a', points: pts(MAX_MARKERS) },
          { name: 'b', points: pts(MAX_MARKERS + 1) },
        ],
      }),
    );
    expect(count(els, 'circle')).toBe(MAX_MARKERS);
    expect(count(els, 'polyline')).toBe(2);
  });
});

describe('box plot', () => {
  it('one box per non-empty group', () => {
    const els = checkSvg(
      boxPlotSvg({
        title: 't',
        yLabel: 'y',
        groups: [
          { name: 'a', values: [1, 2, 3] },
          { name: 'b', values: [] },
          { name: 'c&d', values: [5] },
        ],
      }),
    );
    expect(count(els, 'g', (e) => e.attrs.class === 'box')).toBe(3);
    expect(count(els, 'rect', (e) => e.attrs['fill-opacity'] === '0.5')).toBe(2);
  });
  it('colours by series, sets clusters side by side under one label each, with a legend', () => {
    const groups = ['lo', 'hi'].flatMap((sev) =>
      ['vit', 'moe'].map((m) => ({ name: `s${sev} ${m}`, series: m, cluster: sev, values: [1, 2, 3] })),
    );
    const svg = boxPlotSvg({ title: 't', yLabel: 'y', xLabel: 'severity', groups });
    const els = checkSvg(svg);
    const boxes = els.filter(
      (e) => e.name === 'rect' && e.attrs['fill-opacity'] === '0.5' && e.attrs.class !== 'legend',
    );
    expect(boxes).toHaveLength(4);
    // same model, same colour; the two models differ
    expect(boxes[0]!.attrs.fill).toBe(boxes[2]!.attrs.fill);
    expect(boxes[0]!.attrs.fill).not.toBe(boxes[1]!.attrs.fill);
    expect(count(els, 'rect', (e) => e.attrs.class === 'legend')).toBe(2);
    // within a cluster boxes are one slot apart; across clusters two (a one-slot gap)
    const x = boxes.map((b) => Number(b.attrs.x));
    expect(x[2]! - x[1]!).toBeCloseTo(2 * (x[1]! - x[0]!), 6);
    expect(x[3]! - x[2]!).toBeCloseTo(x[1]! - x[0]!, 6);
    expect(svg.match(/>(lo|hi)<\/text>/g)).toHaveLength(2);
  });
});

describe('patch overlay', () => {
  const panel = (highlight: number[]) => ({
    label: 'p',
    pixels: new Uint8Array(16).fill(200),
    height: 4,
    width: 4,
    patchSize: 2,
    highlight,
  });
  it('draws every pixel and one marked rectangle per highlighted patch', () => {
    const els = checkSvg(
      patchOverlaySvg({
        title: 't',
        columns: 2,
        panels: [panel([1, 0, 0.5, 0]), panel([0, 0, 0, 0])],
        caption: 'c',
        pixelSize: 3,
      }),
    );
    expect(count(els, 'rect', (e) => e.attrs.class === 'processed')).toBe(2);
    expect(count(els, 'rect', (e) => e.attrs.width === '3' && e.attrs.height === '3')).toBe(2 * 16);
    // the other 2 + 4 patches are dimmed: 2×2 pixels of 3 px
    expect(count(els, 'rect', (e) => e.attrs.width === '6' && e.attrs['fill-opacity'] === '0.55')).toBe(6);
    expect(count(els, 'g', (e) => e.attrs.class === 'panel')).toBe(2);
  });
  it('refuses a highlight that does not match the patch grid', () => {
    expect(() => patchOverlaySvg({ title: 't', columns: 1, panels: [panel([1, 0, 0])] })).toThrow(
      /3 highlight values for 4 patches/,
    );
  });
});
