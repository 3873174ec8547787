/**
 * The results viewer: a `results.json` from `vmoe eval --out`, drawn with the same SVG builders the CLI uses
 * (src/export/eval-figures.ts): the reliability diagram from its bins and the risk–coverage curve. results.json keeps
 * OOD metrics but not the per-example scores the CLI's OOD histograms are drawn from, so OOD detection is shown
 * as its AUROC table (the histograms are in the run's figures/ folder).
 */
import { reliabilityDiagramSvg, riskCoverageSvg } from '../../src/export/eval-figures.js';

interface ResultsJson {
  dataset?: string;
  split?: string;
  n?: number;
  ece?: number;
  aurc?: number;
  calibration?: { reliability?: { count: number; accuracy: number | null; confidence: number | null }[] };
  selective_prediction?: { risk_coverage?: { coverage: number[]; risk: number[] } };
  ood?: { dataset: string; scores: Record<string, { ood_positive?: { auroc: number } }> }[];
  checkpoint?: { path?: string; sha256?: string };
}

function figure(svg: string, label: string): HTMLElement {
  const f = document.createElement('figure');
  f.setAttribute('aria-label', label);
  f.innerHTML = svg; // built by our own figure code from numbers, with text escaped (escapeXml)
  return f;
}

/** Renders the figures of a results.json file into `out`. */
export async function renderResultsFile(file: File, out: HTMLElement): Promise<void> {
  out.textContent = '';
  let r: ResultsJson;
  try {
    r = JSON.parse(await file.text()) as ResultsJson;
  } catch (e) {
    out.textContent = `${file.name} is not JSON: ${(e as Error).message}`;
    return;
  }
  const subtitle = `${r.dataset ?? '?'} ${r.split ?? ''}, n = ${r.n ?? '?'}${r.checkpoint?.sha256 ? `, ${r.checkpoint.sha256.slice(0, 12)}` : ''}`;
  let shown = 0;
  const bins = r.calibration?.reliability;
  if (bins?.length && typeof r.ece === 'number') {
    out.append(
      figure(
        reliabilityDiagramSvg({
          bins: bins.map((b) => ({
            count: b.count,
            accuracy: b.accuracy ?? Number.NaN,
            confidence: b.confidence ?? Number.NaN,
          })),
          ece: r.ece,
          subtitle,
        }),
        'reliability diagram',
      ),
    );
    shown++;
  }
  const rc = r.selective_prediction?.risk_coverage;
  if (rc?.coverage?.length && typeof r.aurc === 'number') {
    out.append(
      figure(
        riskCoverageSvg({
          series: [{ name: 'model', coverage: rc.coverage, risk: rc.risk, aurc: r.aurc }],

          subtitle,
        }),
        'risk–coverage curve',
      ),
    );
    shown++;
  }
  if (r.ood?.length) {
    const t = document.createElement('table');
    t.className = 'top5';
    const scores = Object.keys(r.ood[0]!.scores);
    t.innerHTML = `<caption>OOD detection, AUROC (OOD positive)</caption><tr><th>OOD set</th>${scores.map((s) => `<th>${s}</th>`).join('')}</tr>`;
    for (const o of r.ood) {
      const tr = document.createElement('tr');
      const cells = [o.dataset, ...scores.map((s) => o.scores[s]?.ood_positive?.auroc?.toFixed(4) ?? '–')];
      for (const c of cells) {
        const td = document.createElement('td');
        td.textContent = c;
        tr.append(td);
      }
      t.append(tr);
    }
    out.append(t);
    shown++;
  }
  if (shown === 0) out.textContent = `${file.name}: no reliability bins, risk–coverage curve or OOD results in it`;
}
