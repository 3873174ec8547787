/**
 * The page (docs/web.md): loads a bundle (demo, URL or picked files), takes an image (drawn, dropped, picked or a
 * bundled test image), runs the toolkit's model on it in the browser and shows the prediction, its uncertainty and
 * the routing of every MoE layer; the capacity slider and the BPR / vanilla switch re-run it.
 */
import { PALETTE } from '../../src/export/figures.js';
import { BACKENDS, useBackend, type PageBackend } from './backend.js';
import { loadBundleFromFiles, loadBundleFromUrl, type LoadedBundle } from './bundle.js';
import { classify, deepEnsemble, type Classification, type LayerRouting } from './run.js';
import { toModelPixels } from './image.js';
import { renderResultsFile } from './viewer.js';

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

interface DemoEntry {
  name: string;
  path: string;
}

const state: {
  bundle: LoadedBundle | null;
  /** Other bundles averaged with `bundle` as a deep ensemble (empty: no ensemble). */
  partners: LoadedBundle[];
  demos: DemoEntry[];
  pixels: Uint8Array | null;
  sample: number | null;
  runs: number;
} = { bundle: null, partners: [], demos: [], pixels: null, sample: null, runs: 0 };

function showError(msg: string | null): void {
  const el = $('error');
  el.hidden = msg === null;
  el.textContent = msg ?? '';
}

function expertColour(e: number): string {
  if (e < PALETTE.length) return PALETTE[e]!;
  return `hsl(${(e * 137.5) % 360} 65% 50%)`;
}

// ---- drawing and images -------------------------------------------------------------------------------

const draw = $<HTMLCanvasElement>('draw');
const dctx = draw.getContext('2d', { willReadFrequently: true })!;

function clearCanvas(): void {
  dctx.fillStyle = 'black';
  dctx.fillRect(0, 0, draw.width, draw.height);
}

/** The drawing canvas (or any image source) at its own resolution → model pixels (S, S, C), see image.ts. */
function pixelsFrom(source: CanvasImageSource, w: number, h: number, invert: boolean): Uint8Array {
  const m = state.bundle!.model.cfg;
  const c = document.createElement('canvas');
  c.width = w;
  c.height = h;
  const ctx = c.getContext('2d', { willReadFrequently: true })!;
  ctx.drawImage(source, 0, 0, w, h);
  const rgba = ctx.getImageData(0, 0, w, h).data;
  return toModelPixels(rgba, w, h, m.imageSize, m.channels, invert);
}

/** Paints model pixels (S, S, C) into a canvas (for the drawing area, thumbnails and the routing grids). */
function paintPixels(target: HTMLCanvasElement, pixels: Uint8Array): void {
  const m = state.bundle!.model.cfg;
  const S = m.imageSize;
  const c = document.createElement('canvas');
  c.width = S;
  c.height = S;
  const ctx = c.getContext('2d')!;
  const img = ctx.createImageData(S, S);
  for (let i = 0; i < S * S; i++) {
    for (let j = 0; j < 3; j++) img.data[4 * i + j] = pixels[i * m.channels + (m.channels === 1 ? 0 : j)]!;
    img.data[4 * i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  const t = target.getContext('2d')!;
  t.imageSmoothingEnabled = false;
  t.drawImage(c, 0, 0, target.width, target.height);
}

function pixelsDataUrl(pixels: Uint8Array): string {
  const c = document.createElement('canvas');
  const S = state.bundle!.model.cfg.imageSize;
  c.width = S;
  c.height = S;
  paintPixels(c, pixels);
  return c.toDataURL();
}

let drawing = false;
let last: [number, number] | null = null;
draw.addEventListener('pointerdown', (e) => {
  drawing = true;
  draw.setPointerCapture(e.pointerId);
  if (state.sample !== null || state.pixels === null) {
    // a fresh drawing replaces a test image
    clearCanvas();
    selectSample(null);
  }
  last = pos(e);
  stroke(last, last);
});
draw.addEventListener('pointermove', (e) => {
  if (!drawing) return;
  const p = pos(e);
  stroke(last ?? p, p);
  last = p;
});
draw.addEventListener('pointerup', () => {
  drawing = false;
  last = null;
  useDrawing();
});
function pos(e: PointerEvent): [number, number] {
  const r = draw.getBoundingClientRect();
  return [((e.clientX - r.left) / r.width) * draw.width, ((e.clientY - r.top) / r.height) * draw.height];
}
function stroke(a: [number, number], b: [number, number]): void {
  dctx.strokeStyle = 'white';
  dctx.lineWidth = draw.width / 11;
  dctx.lineCap = 'round';
  dctx.lineJoin = 'round';
  dctx.beginPath();
  dctx.moveTo(a[0], a[1]);
  dctx.lineTo(b[0], b[1]);
  dctx.stroke();
}
function useDrawing(): void {
  if (!state.bundle) return;
  state.pixels = pixelsFrom(draw, draw.width, draw.height, false);
  rerun();
}

async function useImageFile(file: File): Promise<void> {
  if (!state.bundle) return;
  try {
    const bmp = await createImageBitmap(file);
    state.pixels = pixelsFrom(bmp, bmp.width, bmp.height, $<HTMLInputElement>('invert').checked);
    selectSample(null);
    paintPixels(draw, state.pixels);
    rerun();
  } catch (e) {
    showError(`${file.name}: cannot read this image (${(e as Error).message})`);
  }
}

$('clear').addEventListener('click', () => {
  clearCanvas();
  selectSample(null);
  state.pixels = null;
  $('prediction').textContent = 'Draw something, drop an image or pick a test image.';
  $('members').textContent = '';
  $('routing').textContent = '';
});
draw.addEventListener('dragover', (e) => {
  e.preventDefault();
  draw.classList.add('dragover');
});
draw.addEventListener('dragleave', () => draw.classList.remove('dragover'));
draw.addEventListener('drop', (e) => {
  e.preventDefault();
  draw.classList.remove('dragover');
  const f = e.dataTransfer?.files[0];
  if (f) void useImageFile(f);
});
$<HTMLInputElement>('image-file').addEventListener('change', (e) => {
  const f = (e.target as HTMLInputElement).files?.[0];
  if (f) void useImageFile(f);
});

// ---- samples ----------------------------------------------------------------------------------------------

function samplePixels(i: number): Uint8Array {
  const b = state.bundle!;
  const { imageSize: S, channels: C } = b.model.cfg;
  return b.samples!.subarray(i * S * S * C, (i + 1) * S * S * C);
}

function selectSample(i: number | null): void {
  state.sample = i;
  for (const btn of document.querySelectorAll<HTMLButtonElement>('#samples button')) {
    btn.setAttribute('aria-pressed', String(Number(btn.dataset.index) === i));
  }
}

function renderSamples(): void {
  const box = $('samples');
  box.textContent = '';
  const b = state.bundle!;
  const s = b.manifest.samples;
  if (!s || !b.samples) {
    box.textContent = 'This bundle has no test images.';
    return;
  }
  for (let i = 0; i < s.n; i++) {
    const btn = document.createElement('button');
    btn.type = 'button';
    btn.dataset.index = String(i);
    btn.setAttribute('aria-pressed', 'false');
    const label = b.manifest.classNames[s.labels[i]!] ?? String(s.labels[i]);
    btn.setAttribute('aria-label', `test image ${i + 1}: ${label}`);
    const c = document.createElement('canvas');
    c.width = 56;
    c.height = 56;
    paintPixels(c, samplePixels(i));
    const cap = document.createElement('span');
    cap.textContent = label;
    btn.append(c, cap);
    btn.addEventListener('click', () => {
      selectSample(i);
      state.pixels = samplePixels(i).slice();
      paintPixels(draw, state.pixels);
      rerun();
    });
    box.append(btn);
  }
}

// ---- running and showing ----------------------------------------------------------------------------------

function routingSettings(): { capacityFactor: number; batchPriority: boolean } {
  return {
    capacityFactor: Number($<HTMLInputElement>('capacity').value),
    batchPriority: $<HTMLInputElement>('mode-bpr').checked,
  };
}

function rerun(): void {
  const b = state.bundle;
  if (!b || !state.pixels) return;
  showError(null);
  try {
    const settings = routingSettings();
    const own = classify(b.model, state.pixels, b.manifest.pixelScale, settings);
    const r = state.partners.length
      ? deepEnsemble(
          [own, ...state.partners.map((p) => classify(p.model, state.pixels!, p.manifest.pixelScale, settings))],
          [b.manifest.name, ...state.partners.map((p) => p.manifest.name)],
        )
      : own;
    const moe = b.manifest.model.moe;
    // the same image at the model's own routing setting, to show what the slider and switch changed
    const atDefault =
      b.manifest.model.type !== 'vit' &&
      (settings.capacityFactor !== moe.capacityFactor || settings.batchPriority !== moe.batchPriority)
        ? classify(b.model, state.pixels, b.manifest.pixelScale, {
            capacityFactor: moe.capacityFactor,
            batchPriority: moe.batchPriority,
          })
        : null;
    render(r, atDefault);
  } catch (e) {
    showError(`could not run the model: ${(e as Error).message}`);
  }
}

const pct = (p: number) => `${(100 * p).toFixed(2)}%`;

function render(r: Classification, atDefault: Classification | null): void {
  const names = state.bundle!.manifest.classNames;
  const pred = $('prediction');
  pred.textContent = '';
  const wrap = document.createElement('div');
  wrap.className = 'pred';
  const table = document.createElement('table');
  table.className = 'top5';
  table.id = 'top5';
  table.innerHTML = '<caption>Top-5 classes</caption>';
  for (const { cls, p } of r.top) {
    const tr = document.createElement('tr');
    tr.dataset.class = String(cls);
    tr.dataset.prob = String(p);
    tr.innerHTML = `<td class="name"></td><td class="p"></td><td><div class="bar" style="width:${Math.max(1, 160 * p)}px"></div></td>`;
    tr.querySelector('.name')!.textContent = names[cls] ?? String(cls);
    tr.querySelector('.p')!.textContent = pct(p);
    table.append(tr);
  }
  const stats = document.createElement('dl');
  stats.className = 'stats';
  const processedPct = r.layers.length ? pct(r.processed) : 'n/a';
  const items: [string, string, string][] = [
    ['predicted', names[r.top[0]!.cls] ?? '', 'pred-class'],
    ['max probability', pct(r.maxProb), 'max-prob'],
    ['entropy', `${r.entropy.toFixed(4)} nats`, 'entropy'],
    ['processed assignments', processedPct, 'processed'],
    ['time', `${r.ms.toFixed(1)} ms`, 'time'],
  ];
  if (r.mutualInformation !== undefined) {
    items.splice(3, 0, ['mutual information', `${r.mutualInformation.toFixed(4)} nats`, 'mi']);
    items.splice(4, 0, ['member disagreement', pct(r.disagreement!), 'disagreement']);
  }
  for (const [k, v, id] of items) {
    const dt = document.createElement('dt');
    dt.textContent = k;
    const dd = document.createElement('dd');
    dd.id = id;
    dd.textContent = v;
    stats.append(dt, dd);
  }
  wrap.append(table, stats);
  pred.append(wrap);
  if (atDefault) {
    const m = state.bundle!.manifest.model.moe;
    const p = document.createElement('p');
    p.id = 'compare';
    p.className = 'info';
    p.textContent =
      `At the model's own setting (capacity factor ${m.capacityFactor}, ${m.batchPriority ? 'BPR' : 'vanilla'}): ` +
      `${names[atDefault.top[0]!.cls]} ${pct(atDefault.maxProb)}, entropy ${atDefault.entropy.toFixed(4)} nats, ` +
      `${pct(atDefault.processed)} of assignments processed.`;
    pred.append(p);
  }

  const mem = $('members');
  mem.textContent = '';
  if (r.members) {
    const h = document.createElement('h3');
    h.textContent = r.memberNames ? 'Deep ensemble members' : 'E³ members';
    const box = document.createElement('div');
    box.className = 'members';
    r.members.forEach((probs, m) => {
      const order = probs.map((p, c) => ({ c, p })).sort((a, b) => b.p - a.p);
      const t = document.createElement('table');
      t.className = 'top5 member';
      t.dataset.member = String(m);
      t.innerHTML = '<caption></caption>';
      t.querySelector('caption')!.textContent = r.memberNames?.[m] ?? `member ${m + 1}`;
      for (const { c, p } of order.slice(0, 3)) {
        const tr = document.createElement('tr');
        tr.dataset.class = String(c);
        tr.dataset.prob = String(p);
        tr.innerHTML = `<td class="name"></td><td>${pct(p)}</td>`;
        tr.querySelector('.name')!.textContent = names[c] ?? String(c);
        t.append(tr);
      }
      box.append(t);
    });
    mem.append(h, box);
  }
  renderRouting(r.layers);
  state.runs++;
  const results = $('results');
  results.dataset.run = String(state.runs);
  results.dataset.top = String(r.top[0]!.cls);
}

function renderRouting(layers: LayerRouting[]): void {
  const box = $('routing');
  box.textContent = '';
  if (layers.length === 0) {
    box.textContent = 'This model has no MoE layers.';
    return;
  }
  const img = pixelsDataUrl(state.pixels!);
  const wrap = document.createElement('div');
  wrap.className = 'layers';
  const cell = 40;
  for (const l of layers) {
    for (let m = 0; m < l.members; m++) {
      const fig = document.createElement('figure');
      fig.className = 'layer';
      fig.dataset.block = String(l.block);
      fig.dataset.member = String(m);
      const cap = document.createElement('figcaption');
      cap.textContent =
        `block ${l.block}${l.members > 1 ? `, member ${m + 1}` : ''}: ${l.numExperts} experts, top-${l.k}, ` +
        `capacity ${l.capacity}/expert, ${l.droppedPatches} of ${l.grid * l.grid} patches dropped`;
      const grid = document.createElement('div');
      grid.className = 'grid';
      grid.style.gridTemplateColumns = `repeat(${l.grid}, ${cell}px)`;
      grid.style.gridAutoRows = `${cell}px`;
      grid.setAttribute('role', 'img');
      grid.setAttribute('aria-label', cap.textContent);
      const under = document.createElement('img');
      under.src = img;
      under.alt = '';
      grid.append(under);
      for (let p = 0; p < l.grid * l.grid; p++) {
        const experts: number[] = [];
        const kept: number[] = [];
        for (let j = 0; j < l.k; j++) {
          experts.push(l.expert[(p * l.members + m) * l.k + j]!);
          kept.push(l.kept[(p * l.members + m) * l.k + j]!);
        }
        const c = document.createElement('div');
        c.className = 'cell';
        c.dataset.patch = String(p);
        c.dataset.experts = experts.join(',');
        c.dataset.kept = kept.join(',');
        c.title = `patch ${p}: ${experts.map((e, j) => `expert ${e}${kept[j] ? '' : ' (dropped)'}`).join(', ')}`;
        // a patch no expert processed is hatched grey (the .dropped style), not coloured by its choice
        if (kept.every((k) => k === 0)) c.classList.add('dropped');
        else c.style.background = expertColour(experts[0]!);
        if (l.k > 1) {
          const s = document.createElement('div');
          s.className = 'second';
          s.style.background = expertColour(experts[1]!);
          c.append(s);
        }
        if (kept.some((k) => k === 0)) {
          const x = document.createElement('span');
          x.className = 'x';
          x.textContent = '✕';
          c.append(x);
        }
        grid.append(c);
      }
      fig.append(cap, grid);
      wrap.append(fig);
    }
  }
  const legend = document.createElement('div');
  legend.className = 'legend';
  const E = layers[0]!.numExperts;
  for (let e = 0; e < E; e++) {
    const s = document.createElement('span');
    s.innerHTML = `<span class="swatch" style="background:${expertColour(e)}"></span>expert ${e}`;
    legend.append(s);
  }
  box.append(wrap, legend);
}

// ---- loading bundles ----------------------------------------------------------------------------------------

/** Whether two bundles can be averaged: same input and the same classes in the same order. */
function compatible(a: LoadedBundle, b: LoadedBundle): boolean {
  const x = a.manifest;
  const y = b.manifest;
  return (
    x.model.imageSize === y.model.imageSize &&
    x.model.channels === y.model.channels &&
    x.classNames.join('\n') === y.classNames.join('\n')
  );
}

/** Loads (or drops) the other demo bundles as deep-ensemble partners of the current bundle, then re-runs. */
async function setEnsemble(): Promise<void> {
  for (const p of state.partners) p.model.dispose();
  state.partners = [];
  const b = state.bundle;
  if (b && $<HTMLInputElement>('ensemble-all').checked) {
    const others = state.demos.filter((d) => d.path !== b.source);
    try {
      const loaded = await Promise.all(others.map((d) => loadBundleFromUrl(d.path)));
      state.partners = loaded.filter((p) => compatible(b, p));
      for (const p of loaded) if (!state.partners.includes(p)) p.model.dispose();
      if (state.partners.length === 0) showError('no other demo bundle has the same inputs and classes as this one');
    } catch (e) {
      showError((e as Error).message);
    }
  }
  document.body.dataset.ensemble = String(state.partners.length);
  rerun();
}

async function useBundle(load: Promise<LoadedBundle>): Promise<void> {
  showError(null);
  $('model-info').textContent = 'loading…';
  try {
    const b = await load;
    state.bundle?.model.dispose();
    state.bundle = b;
    const m = b.manifest;
    const moe = m.model.type === 'vit' ? '' : `, ${m.model.moe.numExperts} experts, top-${m.model.moe.k}`;
    const ens = m.model.type === 'e3' ? `, ${m.model.ensemble.members} members` : '';
    $('model-info').textContent =
      `${m.name}: ${m.model.type} on ${m.dataset}${moe}${ens}; checkpoint ${m.checkpoint.file} ` +
      `(step ${m.checkpoint.step}, sha256 ${m.checkpoint.sha256.slice(0, 12)}…) from ${b.source}`;
    $('model-info').dataset.sha256 = m.checkpoint.sha256;
    const cap = $<HTMLInputElement>('capacity');
    cap.value = String(m.model.moe.capacityFactor);
    $('capacity-value').textContent = cap.value;
    $<HTMLInputElement>(m.model.moe.batchPriority ? 'mode-bpr' : 'mode-vanilla').checked = true;
    renderSamples();
    state.pixels = null;
    clearCanvas();
    if (b.samples && m.samples) {
      selectSample(0);
      state.pixels = samplePixels(0).slice();
      paintPixels(draw, state.pixels);
    }
    await setEnsemble(); // re-runs
    document.body.dataset.bundle = m.name;
  } catch (e) {
    $('model-info').textContent = '';
    showError((e as Error).message);
  }
}

async function start(): Promise<void> {
  clearCanvas();
  const backendSel = $<HTMLSelectElement>('backend-select');
  const want = (new URLSearchParams(location.search).get('backend') ?? 'wasm') as PageBackend;
  backendSel.value = BACKENDS.includes(want) ? want : 'wasm';
  const b = await useBackend(backendSel.value as PageBackend);
  $('backend-note').textContent = b.note;
  document.body.dataset.backend = b.active;
  backendSel.addEventListener('change', async () => {
    const r = await useBackend(backendSel.value as PageBackend);
    $('backend-note').textContent = r.note;
    document.body.dataset.backend = r.active;
    rerun();
  });

  const cap = $<HTMLInputElement>('capacity');
  cap.addEventListener('input', () => {
    $('capacity-value').textContent = cap.value;
    rerun();
  });
  for (const id of ['mode-bpr', 'mode-vanilla']) $(id).addEventListener('change', rerun);
  $('bundle-url-load').addEventListener('click', () => {
    const u = $<HTMLInputElement>('bundle-url').value.trim();
    if (u) void useBundle(loadBundleFromUrl(u));
  });
  $<HTMLInputElement>('bundle-files').addEventListener('change', (e) => {
    const files = (e.target as HTMLInputElement).files;
    if (files?.length) void useBundle(loadBundleFromFiles(files));
  });
  $<HTMLInputElement>('results-file').addEventListener('change', async (e) => {
    const f = (e.target as HTMLInputElement).files?.[0];
    if (f) renderResultsFile(f, $('viewer-out'));
  });

  $<HTMLInputElement>('ensemble-all').addEventListener('change', () => void setEnsemble());

  const sel = $<HTMLSelectElement>('demo-select');
  let demos: DemoEntry[] = [];
  try {
    const r = await fetch('demo/index.json');
    if (r.ok) demos = (await r.json()) as DemoEntry[];
  } catch {
    demos = [];
  }
  state.demos = demos;
  if (demos.length === 0) {
    sel.innerHTML = '<option value="">no demo bundle (run npm run web:build)</option>';
    $('model-info').textContent = 'No demo bundle here: load one by URL or pick its files.';
  }
  for (const d of demos) {
    const o = document.createElement('option');
    o.value = d.path;
    o.textContent = d.name;
    sel.append(o);
  }
  sel.addEventListener('change', () => {
    if (sel.value) void useBundle(loadBundleFromUrl(sel.value));
  });
  const pick = new URLSearchParams(location.search).get('bundle');
  const first = pick ?? demos[0]?.path;
  if (pick && demos.some((d) => d.path === pick)) sel.value = pick;
  if (first) await useBundle(loadBundleFromUrl(first));
  document.body.dataset.ready = 'true';
}

void start();
