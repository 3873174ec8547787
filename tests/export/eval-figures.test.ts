import { describe, expect, it } from 'vitest';
import {
  evalFigures,
  fewShotFigure,
  fewShotSvg,
  histogramCounts,
  oracleAurcOf,
  reliabilityDiagramSvg,
  reliabilityLayout,
  riskCoverageSvg,
  scoreHistogramSvg,
  thinIndices,
  type ReliabilityBinInput,
} from '../../src/export/eval-figures.js';
import type { Outputs } from '../../src/vmoe/outputs.js';
import type { ShotResult } from '../../src/fewshot/protocol.js';
import { aurc } from '../../src/metrics/index.js';
import { checkSvg, count, type SvgElement } from '../eval/svg-check.js';

const num = (e: SvgElement, a: string) => Number(e.attrs[a]);
const byClass = (els: SvgElement[], name: string, cls: string) =>
  els.filter((e) => e.name === name && e.attrs.class === cls);
/** The plot frame(s): unfilled rects with the dark outline, in document order. */
const frames = (els: SvgElement[]) =>
  els
    .filter((e) => e.name === 'rect' && e.attrs.fill === 'none' && e.attrs.stroke === '#333')
    .map((e) => ({ x: num(e, 'x'), y: num(e, 'y'), w: num(e, 'width'), h: num(e, 'height') }));
const points = (e: SvgElement) => e.attrs.points!.split(' ').map((p) => p.split(',').map(Number) as [number, number]);
/** Pixel coordinates are written rounded to 0.01. */
const PX = 0.011;

describe('reliability diagram', () => {
  // 5 equal-width bins; bins 0 and 2 empty (their accuracy/confidence are NaN, as ece() reports them)
  const bins: ReliabilityBinInput[] = [
    { count: 0, accuracy: NaN, confidence: NaN },
    { count: 3, accuracy: 1 / 3, confidence: 0.3 },
    { count: 0, accuracy: NaN, confidence: NaN },
    { count: 10, accuracy: 0.5, confidence: 0.7 },
    { count: 7, accuracy: 1, confidence: 0.9 },
  ];
  const total = 20;
  const svg = reliabilityDiagramSvg({ bins, ece: 0.1234, subtitle: 'a & b <c>' });
  const els = checkSvg(svg);
  const { top, hist } = reliabilityLayout();

  it('title states the bins and the ECE; the subtitle is escaped', () => {
    expect(svg).toContain('5 equal-width bins, ECE 12.34%');
    expect(svg).toContain('a &amp; b &lt;c&gt;');
    expect(svg).not.toContain('NaN');
  });

  it.each(bins.map((b, i) => ({ i, ...b })))(
    'bin $i: accuracy bar height = accuracy × panel height, at x = b/B',
    ({ i, count: n, accuracy }) => {
      const bar = byClass(els, 'rect', 'acc').find((e) => e.attrs['data-bin'] === String(i))!;
      const want = n > 0 ? accuracy * top.h : 0;
      expect(num(bar, 'height')).toBeCloseTo(want, 1);
      expect(Math.abs(num(bar, 'y') - (top.y + top.h - want))).toBeLessThan(PX);
      expect(Math.abs(num(bar, 'x') - (top.x + (i / 5) * top.w))).toBeLessThan(PX);
      expect(Math.abs(num(bar, 'width') - top.w / 5)).toBeLessThan(PX);
    },
  );

  it.each(bins.map((b, i) => ({ i, ...b })))(
    'bin $i: gap spans accuracy to mean confidence (none when empty)',
    ({ i, count: n, accuracy, confidence }) => {
      const gap = byClass(els, 'rect', 'gap').find((e) => e.attrs['data-bin'] === String(i));
      if (n === 0) {
        expect(gap).toBeUndefined();
        return;
      }
      expect(Math.abs(num(gap!, 'height') - Math.abs(confidence - accuracy) * top.h)).toBeLessThan(PX);
      expect(Math.abs(num(gap!, 'y') - (top.y + top.h - Math.max(confidence, accuracy) * top.h))).toBeLessThan(PX);
    },
  );

  it('confidence histogram bars are proportional to the counts; empty bins have zero height', () => {
    const bars = byClass(els, 'rect', 'count');
    expect(bars.length).toBe(5);
    const tallest = Math.max(...bars.map((b) => num(b, 'height')));
    expect(tallest).toBeLessThanOrEqual(hist.h);
    expect(tallest).toBeGreaterThan(hist.h / 2); // the axis top is a nice number ≤ 2 × the largest share
    bars.forEach((b, i) => {
      expect(num(b, 'height') / tallest).toBeCloseTo(bins[i]!.count / 10, 3);
      expect(Math.abs(num(b, 'y') + num(b, 'height') - (hist.y + hist.h))).toBeLessThan(PX);
    });
  });

  it('draws the diagonal of perfect calibration corner to corner', () => {
    const d = byClass(els, 'line', 'diagonal');
    expect(d.length).toBe(1);
    expect([num(d[0]!, 'x1'), num(d[0]!, 'y1'), num(d[0]!, 'x2'), num(d[0]!, 'y2')]).toEqual([
      top.x,
      top.y + top.h,
      top.x + top.w,
      top.y,
    ]);
  });

  it('marks overall accuracy and mean confidence (count-weighted bin means)', () => {
    const acc = (3 * (1 / 3) + 10 * 0.5 + 7 * 1) / total; // 13/20
    const conf = (3 * 0.3 + 10 * 0.7 + 7 * 0.9) / total; // 14.2/20
    const marks = Object.fromEntries(byClass(els, 'line', 'mark').map((e) => [e.attrs['data-name'], num(e, 'x1')]));
    expect(Math.abs(marks.accuracy! - (top.x + acc * top.w))).toBeLessThan(PX);
    expect(Math.abs(marks['mean confidence']! - (top.x + conf * top.w))).toBeLessThan(PX);
    expect(svg).toContain('accuracy 65.00%');
    expect(svg).toContain('mean confidence 71.00%');
  });

  it('all bins empty: zero-height bars, no marks, no NaN', () => {
    const empty = reliabilityDiagramSvg({
      bins: Array.from({ length: 3 }, () => ({ count: 0, accuracy: NaN, confidence: NaN })),
      ece: 0,
    });
    const e = checkSvg(empty);
    expect(byClass(e, 'rect', 'acc').map((b) => num(b, 'height'))).toEqual([0, 0, 0]);
    expect(byClass(e, 'rect', 'count').map((b) => num(b, 'height'))).toEqual([0, 0, 0]);
    expect(count(e, 'line', (x) => x.attrs.class === 'mark')).toBe(0);
    expect(empty).not.toContain('NaN');
  });

  it.each([
    [[], /no bins/],
    [[{ count: 2, accuracy: 1.5, confidence: 0.5 }], /bin 0 .*accuracy 1.5/],
    [[{ count: -1, accuracy: 0, confidence: 0 }], /bin 0 has count -1/],
  ] as [ReliabilityBinInput[], RegExp][])('rejects bad bins (%#)', (b, pattern) => {
    expect(() => reliabilityDiagramSvg({ bins: b, ece: 0 })).toThrow(pattern);
  });
});

describe('risk–coverage curve', () => {
  // 4 examples, most confident first: ✓ ✓ ✗ ✗ → risk at i/4 = [0, 0, 1/3, 1/2]
  const series = {
    name: 'model <a>',
    coverage: [0.25, 0.5, 0.75, 1],
    risk: [0, 0, 1 / 3, 1 / 2],
    aurc: (0 + 0 + 1 / 3 + 1 / 2) / 4,
  };
  const svg = riskCoverageSvg({ series: [series, { ...series, name: 'other', risk: [0, 0.5, 1 / 3, 1 / 2] }] });
  const els = checkSvg(svg);
  const [box] = frames(els);

  it('maps (coverage, risk) linearly into the frame; the risk axis tops out at the largest risk (0.5, a nice number)', () => {
    const line = byClass(els, 'polyline', 'series').find((e) => e.attrs['data-name'] === 'model &lt;a&gt;')!;
    const pts = points(line);
    expect(pts.length).toBe(4);
    pts.forEach(([x, y], i) => {
      expect(Math.abs(x - (box!.x + series.coverage[i]! * box!.w))).toBeLessThan(PX);
      expect(Math.abs(y - (box!.y + box!.h * (1 - series.risk[i]! / 0.5)))).toBeLessThan(PX);
    });
  });

  it("legend gives each AURC to 4 decimals, and the oracle's", () => {
    expect(svg).toContain(`model &lt;a&gt;: AURC ${series.aurc.toFixed(4)}`);
    // oracle for 2 correct of 4: risks [0, 0, 1/3, 1/2] — the same ordering, so the same AURC
    expect(svg).toContain(`oracle, errors last (first curve): AURC ${series.aurc.toFixed(4)}`);
    expect(count(els, 'polyline', (e) => e.attrs.class === 'oracle')).toBe(1);
  });

  it('draws the main (first) curve last so it lies on top', () => {
    const names = byClass(els, 'polyline', 'series').map((e) => e.attrs['data-name']);
    expect(names).toEqual(['other', 'model &lt;a&gt;']);
  });

  it.each([
    { n: 4, e: 0.5, want: (1 / 3 + 2 / 4) / 4 },
    { n: 10, e: 0, want: 0 },
    { n: 5, e: 1, want: 1 },
    { n: 10, e: 0.2, want: (1 / 9 + 2 / 10) / 10 },
  ])('oracle AURC(n=$n, e=$e) = $want', ({ n, e, want }) => {
    expect(oracleAurcOf(n, e)).toBeCloseTo(want, 12);
  });

  it('oracle AURC equals the AURC of confidences that rank every correct example first', () => {
    const n = 37,
      wrong = 11;
    const correct = Array.from({ length: n }, (_, i) => (i < n - wrong ? 1 : 0));
    const confidence = Array.from({ length: n }, (_, i) => 1 - i / n);
    expect(oracleAurcOf(n, wrong / n)).toBeCloseTo(aurc(confidence, correct), 12);
  });

  it.each([
    { n: 5, max: 10 },
    { n: 1000, max: 400 },
    { n: 401, max: 400 },
    { n: 3, max: 2 },
  ])('thinIndices($n, $max): at most max, increasing, first and last kept', ({ n, max }) => {
    const idx = thinIndices(n, max);
    expect(idx.length).toBe(Math.min(n, max));
    expect(idx[0]).toBe(0);
    expect(idx[idx.length - 1]).toBe(n - 1);
    for (let i = 1; i < idx.length; i++) expect(idx[i]!).toBeGreaterThan(idx[i - 1]!);
  });

  it('long curves are thinned to maxPoints', () => {
    const n = 5000;
    const coverage = Array.from({ length: n }, (_, i) => (i + 1) / n),
      risk = coverage.map((c) => c / 10);
    const e = checkSvg(riskCoverageSvg({ series: [{ name: 'm', coverage, risk, aurc: 0 }], maxPoints: 100 }));
    expect(points(byClass(e, 'polyline', 'series')[0]!).length).toBe(100);
  });

  it('rejects mismatched lengths and empty input', () => {
    expect(() => riskCoverageSvg({ series: [{ name: 'm', coverage: [1], risk: [0, 1], aurc: 0 }] })).toThrow(
      /"m": 1 coverages but 2 risks/,
    );
    expect(() => riskCoverageSvg({ series: [] })).toThrow(/no series/);
  });
});

describe('score histograms', () => {
  it.each([
    { values: [[0, 0.25, 0.5, 0.75, 1]], bins: 4, edges: [0, 0.25, 0.5, 0.75, 1], counts: [[1, 1, 1, 2]] }, // the maximum goes in the last bin
    {
      values: [
        [0, 1],
        [3, NaN, Infinity],
      ],
      bins: 3,
      edges: [0, 1, 2, 3],
      counts: [
        [1, 1, 0],
        [0, 0, 1],
      ],
    }, // shared edges, non-finite skipped
    { values: [[2, 2, 2]], bins: 2, edges: [1.5, 2, 2.5], counts: [[0, 3]] }, // degenerate range widened by ±½
  ])('histogramCounts %#', ({ values, bins, edges, counts }) => {
    const h = histogramCounts(values, bins);
    expect(h.edges).toEqual(edges);
    expect(h.counts).toEqual(counts);
  });

  const svg = scoreHistogramSvg({
    title: 'OOD & scores',
    panels: [
      {
        title: 'MSP',
        xLabel: 'score',
        series: [
          { name: 'in', values: [0, 0, 0, 1] },
          { name: 'ood', values: [1, 1] },
        ],
      },
      {
        title: 'energy',
        xLabel: 'score',
        series: [
          { name: 'in', values: [5] },
          { name: 'ood', values: [6] },
        ],
      },
    ],
    bins: 2,
  });
  const els = checkSvg(svg);

  it("bar heights are proportional to each set's share per bin; bars stand on the axis", () => {
    const [box] = frames(els);
    const bars: { series: string; bin: number; h: number; bottom: number }[] = [];
    let current = '',
      group = -1;
    for (const e of els) {
      if (e.name === 'g' && e.attrs.class === 'hist') [current, group] = [e.attrs['data-name']!, group + 1];
      // groups 0 and 1 are panel 0's two sets
      if (e.name === 'rect' && e.attrs['data-bin'] !== undefined && group <= 1) {
        bars.push({
          series: current,
          bin: num(e, 'data-bin'),
          h: num(e, 'height'),
          bottom: num(e, 'y') + num(e, 'height'),
        });
      }
    }
    // panel 0: 'in' has shares [3/4, 1/4], 'ood' [0, 1] (empty bins are not drawn)
    expect(bars.map((b) => [b.series, b.bin])).toEqual([
      ['in', 0],
      ['in', 1],
      ['ood', 1],
    ]);
    const tallest = bars.find((b) => b.series === 'ood')!.h;
    expect(bars[0]!.h / tallest).toBeCloseTo(0.75, 3);
    expect(bars[1]!.h / tallest).toBeCloseTo(0.25, 3);
    expect(tallest).toBeCloseTo(box!.h, 1); // share 1 is a nice axis top
    for (const b of bars) expect(Math.abs(b.bottom - (box!.y + box!.h))).toBeLessThan(PX);
  });

  it("one legend for all panels, with each set's size; one outline per set and panel", () => {
    expect(svg).toContain('in (n=4)');
    expect(svg).toContain('ood (n=2)');
    expect(count(els, 'g', (e) => e.attrs.class === 'legend')).toBe(1);
    expect(count(els, 'polyline', (e) => e.attrs.class === 'outline')).toBe(4);
    expect(frames(els).length).toBe(2);
  });

  it('rejects panels that show different sets', () => {
    expect(() =>
      scoreHistogramSvg({
        title: 't',
        panels: [
          { title: 'a', xLabel: 'x', series: [{ name: 'in', values: [0] }] },
          { title: 'b', xLabel: 'x', series: [{ name: 'other', values: [0] }] },
        ],
      }),
    ).toThrow(/panel 1 has series \[other\], panel 0 has \[in\]/);
  });
});

describe('few-shot accuracy against shots', () => {
  const pts = [
    { dataset: 'mnist', shot: 1, mean: 0.4, std: 0.1 },
    { dataset: 'mnist', shot: 5, mean: 0.6, std: 0 },
    { dataset: 'mnist', shot: 25, mean: 0.95, std: 0.1 }, // error bar clipped at 100%
    { dataset: 'fashion', shot: 1, mean: 0.5, std: 0.05 },
    { dataset: 'fashion', shot: 25, mean: 0.7, std: 0.02 },
  ];
  const svg = fewShotSvg({ points: pts, chance: { mnist: 0.1 } });
  const els = checkSvg(svg);
  const [box] = frames(els);
  const circles = els.filter((e) => e.name === 'circle');

  // circles in drawing order: mnist by shot (1, 5, 25), then fashion (1, 25)
  const order = [pts[0]!, pts[1]!, pts[2]!, pts[3]!, pts[4]!];

  it('x is logarithmic in the shot count, y linear in accuracy', () => {
    expect(circles.length).toBe(5);
    const [x1, x5, x25] = circles.slice(0, 3).map((c) => num(c, 'cx'));
    expect((x5! - x1!) / (x25! - x1!)).toBeCloseTo(Math.log(5) / Math.log(25), 3);
    expect(num(circles[3]!, 'cx')).toBe(x1);
    circles.forEach((c, i) =>
      expect(Math.abs(num(c, 'cy') - (box!.y + box!.h * (1 - order[i]!.mean)))).toBeLessThan(PX),
    );
  });

  it('error bars span mean ± std, clipped to [0, 1]; none where std = 0', () => {
    const spans = els
      .filter((e) => e.name === 'path' && e.attrs.class === 'errorbar')
      .map((b) => {
        const [, y0, y1] = /^M[\d.]+ ([\d.]+)V([\d.]+)/.exec(b.attrs.d!)!;
        return (Number(y0) - Number(y1)) / box!.h;
      });
    // mnist 1: 0.3..0.5; mnist 25: 0.85..1 (clipped); fashion 1: 0.45..0.55; fashion 25: 0.68..0.72
    [0.2, 0.15, 0.1, 0.04].forEach((want, i) => expect(spans[i]).toBeCloseTo(want, 3));
    expect(spans.length).toBe(4);
  });

  it('one line per data set, x ticks at the shots, a dotted chance line at 1/K', () => {
    expect(count(els, 'polyline')).toBe(2);
    for (const t of ['1', '5', '25']) expect(svg).toContain(`>${t}</text>`);
    const chance = els.find((e) => e.name === 'line' && e.attrs.class === 'chance')!;
    expect(Math.abs(num(chance, 'y1') - (box!.y + 0.9 * box!.h))).toBeLessThan(PX);
  });

  it('rejects shots below 1', () => {
    expect(() => fewShotSvg({ points: [{ dataset: 'd', shot: 0, mean: 0.5, std: 0 }] })).toThrow(/d has shot 0/);
  });

  it('fewShotFigure reads the chosen λ selection from the report', () => {
    const stats = (mean: number) => ({ mean, std: 0, perSeed: [mean] });
    const results = [1, 10].map((shot) => ({
      dataset: 'mnist',
      shot,
      accuracyByL2: [],
      meanRank: { l2: 1, accuracy: stats(shot / 20) },
      leaveSelfOut: { l2: 1, accuracy: stats(shot / 40) },
    })) as ShotResult[];
    const cy = (svgText: string) => {
      const e = checkSvg(svgText);
      const [b] = frames(e);
      return e.filter((x) => x.name === 'circle').map((c) => 1 - (num(c, 'cy') - b!.y) / b!.h);
    };
    cy(fewShotFigure(results)).forEach((v, i) => expect(v).toBeCloseTo([0.05, 0.5][i]!, 3));
    cy(fewShotFigure(results, { selection: 'leaveSelfOut' })).forEach((v, i) =>
      expect(v).toBeCloseTo([0.025, 0.25][i]!, 3),
    );
  });
});

describe('evalFigures (harness Outputs → named figures)', () => {
  // K = 2, logits (log p, log(1 − p)) so the top-label confidence is max(p, 1 − p), known in advance
  const rows: [number, number][] = [
    [0.95, 0],
    [0.95, 0],
    [0.95, 0],
    [0.95, 1],
    [0.65, 0],
    [0.65, 0],
  ]; // (p, label)
  const outputs = (r: [number, number][], members = 1): Outputs => {
    const one = r.flatMap(([p]) => [Math.log(p), Math.log(1 - p)]);
    return {
      n: r.length,
      numClasses: 2,
      members,
      logits: Float32Array.from(Array.from({ length: members }, () => one).flat()),
      preLogits: new Float32Array(0),
      preLogitsDim: 0,
      labels: Int32Array.from(r.map(([, y]) => y)),
      router: [],
      seconds: 1,
    };
  };

  it('writes reliability, risk–coverage and one OOD figure per set, all well-formed', () => {
    const figs = evalFigures({
      out: outputs(rows),
      bins: 15,
      label: 'vit',
      dataset: 'toy test',
      subtitle: 'toy',
      oodSets: [
        {
          name: 'noise/1',
          outputs: outputs([
            [0.5, 0],
            [0.6, 1],
          ]),
        },
      ],
    });
    expect(figs.map((f) => f.name)).toEqual(['reliability', 'risk-coverage', 'ood-noise_1']);
    for (const f of figs) checkSvg(f.svg);
  });

  it('reliability bars come from the predictions: bin 14 holds 3/4 correct at 0.95, bin 9 2/2 at 0.65', () => {
    const { top } = reliabilityLayout();
    const svg = evalFigures({ out: outputs(rows), bins: 15, label: 'vit', dataset: 'toy', subtitle: 'toy' })[0]!.svg;
    const h = byClass(checkSvg(svg), 'rect', 'acc').map((e) => num(e, 'height') / top.h);
    expect(h.length).toBe(15);
    h.forEach((v, b) => expect(v).toBeCloseTo(b === 14 ? 0.75 : b === 9 ? 1 : 0, 3));
    // ECE = (4/6)|0.95 − 0.75| + (2/6)|0.65 − 1| = 0.25
    expect(svg).toContain('ECE 25.00%');
  });

  it('OOD panels give the AUROC of MSP and energy with OOD positive', () => {
    // in-distribution MSP scores 0.05 ×4, 0.35 ×2; OOD 0.5, 0.4 → every OOD score is higher: AUROC 1
    const svg = evalFigures({
      out: outputs(rows),
      bins: 15,
      label: 'vit',
      dataset: 'toy',
      subtitle: 'toy',
      oodSets: [
        {
          name: 'x',
          outputs: outputs([
            [0.5, 0],
            [0.6, 1],
          ]),
        },
      ],
    })[2]!.svg;
    expect(svg).toContain('MSP: AUROC 1.0000');
    expect(svg).toContain('energy: AUROC');
  });

  it("ensembles up to 5 members get member curves; the ensemble's label says it averages", () => {
    const svg = evalFigures({ out: outputs(rows, 3), bins: 15, label: 'e3', dataset: 'toy', subtitle: 'toy' })[1]!.svg;
    const names = byClass(checkSvg(svg), 'polyline', 'series').map((e) => e.attrs['data-name']);
    expect(names).toEqual(['member 2', 'member 1', 'member 0', 'e3, mean of 3 members']);
    const big = evalFigures({ out: outputs(rows, 6), bins: 15, label: 'mc', dataset: 'toy', subtitle: 'toy' })[1]!.svg;
    expect(byClass(checkSvg(big), 'polyline', 'series').length).toBe(1);
  });
});
