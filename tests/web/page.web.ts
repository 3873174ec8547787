/**
 * The web page (web/, docs/web.md) in headless Chromium: serves the built web/dist/ on a free localhost port,
 * loads the demo bundles and checks the page's numbers against the Node toolkit on the same checkpoints and
 * images — probabilities (≤ 1e-4 on wasm), the routing grid (one cell per patch per MoE layer and member, with the
 * experts and kept flags traceRouting reports), dropped patches at the lowest capacity factor, E³ members — and that
 * the console stays free of errors. Saves docs/figures/web-demo.png. Skips where Chromium is missing.
 */
/// <reference lib="dom" />
// (DOM types for the functions that run inside the page, page.evaluate)
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { chromium, type Browser, type Page } from 'playwright-core';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, type LoadedModel } from '../../src/checkpoint/load.js';
import { initEngine } from '../../src/engine/index.js';
import { traceRouting } from '../../src/eval/routing-analysis.js';
import { parseWebManifest, type WebManifest } from '../../src/export/web-bundle-format.js';
import { modelMembers } from '../../src/vmoe/config.js';
import type { RoutingOverrides } from '../../src/vmoe/model.js';

const root = path.resolve(__dirname, '../..');
const dist = path.join(root, 'web/dist');
const CHROMIUM = process.env.VMOE_CHROMIUM ?? '/usr/bin/chromium';
const haveChromium = fs.existsSync(CHROMIUM);
if (!haveChromium)
  console.warn(
    `skipping the web page tests: no Chromium at ${CHROMIUM}; install it with \`sudo apt-get install chromium\` ` +
      '(or set VMOE_CHROMIUM to a Chromium binary)',
  );

const MIME: Record<string, string> = {
  '.html': 'text/html',
  '.js': 'text/javascript',
  '.css': 'text/css',
  '.wasm': 'application/wasm',
  '.json': 'application/json',
  '.bin': 'application/octet-stream',
  '.png': 'image/png',
};

/** The smallest static server: files under `dir`, nothing else. */
function serve(dir: string): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const file = path.join(dir, decodeURIComponent(url.pathname).replace(/\/$/, '/index.html'));
    if (!file.startsWith(dir) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': MIME[path.extname(file)] ?? 'application/octet-stream' });
    fs.createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

interface Demo {
  name: string;
  path: string;
  checkpoint: string;
}

/** What the Node toolkit says about one image: probabilities, member probabilities, and per MoE layer the plan. */
function nodeReference(
  loaded: LoadedModel,
  manifest: WebManifest,
  samples: Uint8Array,
  i: number,
  routing: RoutingOverrides,
) {
  const cfg = loaded.model.cfg;
  const S = cfg.imageSize;
  const px = samples.subarray(i * S * S * cfg.channels, (i + 1) * S * S * cfg.channels);
  const scale = manifest.pixelScale === 'minus1to1' ? [1 / 127.5, -1] : [1 / 255, 0];
  const x = tf.tensor4d(
    Float32Array.from(px, (v) => v * scale[0]! + scale[1]!),
    [1, S, S, cfg.channels],
  );
  const trace = traceRouting(loaded.model, x, routing);
  let members: number[][] | null = null; // (M, classes)
  tf.tidy(() => {
    const r = loaded.model.forward(x, { train: false, auxLosses: false, routing });
    if (r.memberLogits) members = (tf.softmax(r.memberLogits).arraySync() as number[][][]).map((m) => m[0]!);
  });
  x.dispose();
  const max = Math.max(...trace.logits);
  const e = Array.from(trace.logits, (v) => Math.exp(v - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return { probs: e.map((v) => v / sum), trace, members };
}

interface PageReading {
  top: { cls: number; p: number }[];
  predText: string;
  members: { cls: number; p: number }[][];
  grids: {
    block: number;
    member: number;
    cells: { patch: number; experts: number[]; kept: number[]; dropped: boolean }[];
  }[];
}

async function readPage(page: Page): Promise<PageReading> {
  return page.evaluate(() => {
    const rows = (sel: string) =>
      Array.from(document.querySelectorAll<HTMLElement>(sel)).map((tr) => ({
        cls: Number(tr.dataset.class),
        p: Number(tr.dataset.prob),
      }));
    return {
      top: rows('#top5 tr[data-class]'),
      predText: document.getElementById('pred-class')?.textContent ?? '',
      members: Array.from(document.querySelectorAll('table.member')).map((_t, m) =>
        rows(`table.member[data-member="${m}"] tr[data-class]`),
      ),
      grids: Array.from(document.querySelectorAll<HTMLElement>('#routing figure.layer')).map((f) => ({
        block: Number(f.dataset.block),
        member: Number(f.dataset.member),
        cells: Array.from(f.querySelectorAll<HTMLElement>('.cell')).map((c) => ({
          patch: Number(c.dataset.patch),
          experts: c.dataset.experts!.split(',').map(Number),
          kept: c.dataset.kept!.split(',').map(Number),
          dropped: c.classList.contains('dropped'),
        })),
      })),
    };
  });
}

/** Clicks and waits for the page's next run (the results' data-run counter moves on). */
async function afterRun(page: Page, action: () => Promise<void>): Promise<void> {
  const before = Number(await page.locator('#results').getAttribute('data-run'));
  await action();
  await page.waitForFunction((n) => Number(document.getElementById('results')!.dataset.run) > n, before);
}

/** The page's routing grids equal the Node trace: one grid per (MoE layer, member), one cell per patch. */
function expectSameRouting(
  reading: PageReading,
  trace: ReturnType<typeof traceRouting>,
  cfg: LoadedModel['model']['cfg'],
) {
  const M = modelMembers(cfg);
  const g = cfg.imageSize / cfg.patchSize;
  const first = cfg.readout === 'token' ? 1 : 0;
  expect(reading.grids.length).toBe(trace.layers.length * M);
  for (const grid of reading.grids) {
    const layer = trace.layers.find((l) => l.block === grid.block)!;
    expect(layer, `block ${grid.block}`).toBeDefined();
    expect(grid.cells.length).toBe(g * g);
    for (const c of grid.cells) {
      const row = (c.patch + first) * M + grid.member; // traceRouting rows: (image, token, member)
      const K = layer.k;
      expect(c.experts).toEqual(Array.from(layer.expert.subarray(row * K, row * K + K)));
      expect(c.kept).toEqual(Array.from(layer.kept.subarray(row * K, row * K + K)));
      expect(c.dropped).toBe(c.kept.every((k) => k === 0));
    }
  }
}

describe.skipIf(!haveChromium)('web page in headless Chromium', () => {
  let server: http.Server;
  let browser: Browser;
  let page: Page;
  let base: string;
  const consoleErrors: string[] = [];
  let demos: Demo[];
  const bundles = new Map<string, { manifest: WebManifest; samples: Uint8Array; loaded: LoadedModel }>();

  beforeAll(async () => {
    if (!fs.existsSync(path.join(dist, 'index.html')) || !fs.existsSync(path.join(dist, 'demo/index.json')))
      throw new Error('web/dist/ has no page or no demo bundle: run `npm run web:build` (npm run test:web does)');
    await initEngine({ backend: 'wasm' });
    demos = JSON.parse(fs.readFileSync(path.join(dist, 'demo/index.json'), 'utf8')) as Demo[];
    for (const d of demos) {
      const dir = path.join(dist, d.path);
      const manifest = parseWebManifest(JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')), dir);
      const loaded = loadModel(path.join(root, d.checkpoint));
      expect(loaded.sha256, `${d.path} was exported from ${d.checkpoint}`).toBe(manifest.checkpoint.sha256);
      bundles.set(d.path, {
        manifest,
        samples: new Uint8Array(fs.readFileSync(path.join(dir, 'samples.bin'))),
        loaded,
      });
    }
    server = await serve(dist);
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => consoleErrors.push(String(e)));
    page.on('response', (r) => {
      if (r.status() >= 400) consoleErrors.push(`HTTP ${r.status()} for ${r.url()}`);
    });
    await page.goto(base);
    await page.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });
  });

  afterAll(async () => {
    await browser?.close();
    server?.close();
    for (const b of bundles.values()) b.loaded.model.dispose();
  });

  it('runs on the wasm backend and names it', async () => {
    expect(await page.locator('body').getAttribute('data-backend')).toBe('wasm');
    expect(await page.locator('#backend-note').textContent()).toMatch(/backend wasm/);
  });

  it('classifies test images like the Node toolkit: top-5 probabilities and routing grid', async () => {
    const d = demos[0]!;
    const b = bundles.get(d.path)!;
    expect(b.manifest.model.type).toBe('vmoe');
    const routing = {
      capacityFactor: b.manifest.model.moe.capacityFactor,
      batchPriority: b.manifest.model.moe.batchPriority,
    };
    let worst = 0;
    for (const i of [0, 1, 2, 3]) {
      await afterRun(page, () => page.click(`#samples button[data-index="${i}"]`));
      const r = await readPage(page);
      const ref = nodeReference(b.loaded, b.manifest, b.samples, i, routing);
      const order = ref.probs.map((p, c) => ({ c, p })).sort((x, y) => y.p - x.p);
      expect(r.top.length).toBe(5);
      expect(r.top.map((t) => t.cls)).toEqual(order.slice(0, 5).map((o) => o.c));
      for (const t of r.top) expect(Math.abs(t.p - ref.probs[t.cls]!)).toBeLessThanOrEqual(1e-4);
      for (const t of r.top) worst = Math.max(worst, Math.abs(t.p - ref.probs[t.cls]!));
      expect(r.predText).toBe(b.manifest.classNames[order[0]!.c]);
      expectSameRouting(r, ref.trace, b.loaded.model.cfg);
    }
    console.log(`wasm: largest probability difference from Node ${worst.toExponential(2)}`);
    fs.mkdirSync(path.join(root, 'docs/figures'), { recursive: true });
    await page.screenshot({ path: path.join(root, 'docs/figures/web-demo.png'), fullPage: true });
  });

  it('the lowest capacity factor (slider moved with the keyboard) drops patches, as in Node', async () => {
    const b = bundles.get(demos[0]!.path)!;
    await afterRun(page, () => page.click('#samples button[data-index="0"]'));
    await afterRun(page, async () => {
      await page.focus('#capacity');
      await page.keyboard.press('Home');
    });
    const cf = Number(await page.locator('#capacity').inputValue());
    expect(cf).toBe(0.05);
    const r = await readPage(page);
    const ref = nodeReference(b.loaded, b.manifest, b.samples, 0, {
      capacityFactor: cf,
      batchPriority: b.manifest.model.moe.batchPriority,
    });
    expect(r.grids.flatMap((g) => g.cells).filter((c) => c.dropped).length).toBeGreaterThan(0);
    // the comparison line: the same image at the model's own capacity factor, as the first test saw it
    const atDefault = nodeReference(b.loaded, b.manifest, b.samples, 0, {
      capacityFactor: b.manifest.model.moe.capacityFactor,
      batchPriority: b.manifest.model.moe.batchPriority,
    });
    const best = atDefault.probs.indexOf(Math.max(...atDefault.probs));
    expect(await page.locator('#compare').textContent()).toContain(
      `${b.manifest.classNames[best]} ${(100 * atDefault.probs[best]!).toFixed(2)}%`,
    );
    expectSameRouting(r, ref.trace, b.loaded.model.cfg);
    for (const t of r.top) expect(Math.abs(t.p - ref.probs[t.cls]!)).toBeLessThanOrEqual(1e-4);
  });

  it('shows the E³ members side by side with their probabilities', async () => {
    const d = demos.find((x) => bundles.get(x.path)!.manifest.model.type === 'e3');
    expect(d, 'an E³ demo bundle').toBeDefined();
    const b = bundles.get(d!.path)!;
    await page.selectOption('#demo-select', d!.path);
    await page.waitForSelector(`body[data-bundle="${b.manifest.name}"]`);
    await afterRun(page, () => page.click('#samples button[data-index="1"]'));
    const r = await readPage(page);
    const routing = {
      capacityFactor: b.manifest.model.moe.capacityFactor,
      batchPriority: b.manifest.model.moe.batchPriority,
    };
    const ref = nodeReference(b.loaded, b.manifest, b.samples, 1, routing);
    for (const t of r.top) expect(Math.abs(t.p - ref.probs[t.cls]!)).toBeLessThanOrEqual(1e-4);
    expect(r.members.length).toBe(b.manifest.model.ensemble.members);
    r.members.forEach((rows, m) => {
      for (const t of rows) expect(Math.abs(t.p - ref.members![m]![t.cls]!)).toBeLessThanOrEqual(1e-4);
    });
    expectSameRouting(r, ref.trace, b.loaded.model.cfg);
    expect(await page.locator('#mi').textContent()).toMatch(/nats/);
  });

  it("draws a results.json with the CLI's figure code: reliability diagram, risk–coverage, OOD table", async () => {
    const bins = Array.from({ length: 15 }, (_, b) => ({
      lo: b / 15,
      hi: (b + 1) / 15,
      count: b < 7 ? 0 : 10,
      confidence: b < 7 ? null : (b + 0.5) / 15,
      accuracy: b < 7 ? null : (b + 0.2) / 15,
    }));
    const results = {
      dataset: 'fashion-mnist',
      split: 'test',
      n: 80,
      ece: 0.0345,
      aurc: 0.1234,
      calibration: { reliability: bins },
      selective_prediction: { risk_coverage: { coverage: [0.25, 0.5, 0.75, 1], risk: [0, 0.05, 0.1, 0.2] } },
      ood: [{ dataset: 'mnist', scores: { msp: { ood_positive: { auroc: 0.875 } } } }],
    };
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'vmoe-web-')), 'results.json');
    fs.writeFileSync(file, JSON.stringify(results));
    await page.setInputFiles('#results-file', file);
    await page.waitForSelector('#viewer-out svg');
    const svgs = await page.locator('#viewer-out svg').allTextContents();
    expect(svgs.length).toBe(2);
    expect(svgs[0]).toContain('ECE 3.45%');
    expect(svgs[1]).toContain('AURC 0.1234');
    expect(await page.locator('#viewer-out table').textContent()).toContain('0.8750');
  });

  it('averages the demo bundles as a deep ensemble: members side by side, p̄, mutual information', async () => {
    // the page holds the E³ bundle and its test image 1 (previous test)
    const e3 = demos.find((x) => bundles.get(x.path)!.manifest.model.type === 'e3')!;
    const vm = demos.find((x) => bundles.get(x.path)!.manifest.model.type === 'vmoe')!;
    const a = bundles.get(e3.path)!;
    const b = bundles.get(vm.path)!;
    expect(Buffer.from(a.samples).equals(Buffer.from(b.samples))).toBe(true); // the same test images
    await afterRun(page, () => page.check('#ensemble-all'));
    expect(await page.locator('body').getAttribute('data-ensemble')).toBe('1');
    const r = await readPage(page);
    const own = (x: typeof a) => ({
      capacityFactor: x.manifest.model.moe.capacityFactor,
      batchPriority: x.manifest.model.moe.batchPriority,
    });
    const pa = nodeReference(a.loaded, a.manifest, a.samples, 1, own(a)).probs;
    const pb = nodeReference(b.loaded, b.manifest, b.samples, 1, own(b)).probs;
    const mean = pa.map((p, c) => (p + pb[c]!) / 2);
    for (const t of r.top) expect(Math.abs(t.p - mean[t.cls]!)).toBeLessThanOrEqual(1e-4);
    expect(r.members.length).toBe(2);
    for (const t of r.members[1]!) expect(Math.abs(t.p - pb[t.cls]!)).toBeLessThanOrEqual(1e-4);
    const H = (p: number[]) => -p.reduce((s, v) => s + (v > 0 ? v * Math.log(v) : 0), 0);
    const mi = H(mean) - (H(pa) + H(pb)) / 2;
    expect(Number((await page.locator('#mi').textContent())!.split(' ')[0])).toBeCloseTo(mi, 4);
    const argmax = (p: number[]) => p.indexOf(Math.max(...p));
    expect(await page.locator('#disagreement').textContent()).toBe(argmax(pa) === argmax(pb) ? '0.00%' : '100.00%');
    await afterRun(page, () => page.uncheck('#ensemble-all'));
    expect(await page.locator('body').getAttribute('data-ensemble')).toBe('0');
  });

  it('classifies a mouse drawing and a picked image file like Node on the same 28×28 pixels', async () => {
    const d = demos[0]!;
    const b = bundles.get(d.path)!;
    await page.selectOption('#demo-select', d.path);
    await page.waitForSelector(`body[data-bundle="${b.manifest.name}"]`);
    const S = b.manifest.model.imageSize;
    const routing = {
      capacityFactor: b.manifest.model.moe.capacityFactor,
      batchPriority: b.manifest.model.moe.batchPriority,
    };
    // The model input the page used, read back from the routing grid's image (a PNG of the S×S pixels).
    const inputPixels = async () => {
      const src = (await page.locator('#routing .grid img').first().getAttribute('src'))!;
      const png = PNG.sync.read(Buffer.from(src.split(',')[1]!, 'base64'));
      expect([png.width, png.height]).toEqual([S, S]);
      return Uint8Array.from({ length: S * S }, (_, i) => png.data[4 * i]!);
    };
    const expectLikeNode = async (pixels: Uint8Array) => {
      const r = await readPage(page);
      const ref = nodeReference(b.loaded, b.manifest, pixels, 0, routing);
      for (const t of r.top) expect(Math.abs(t.p - ref.probs[t.cls]!)).toBeLessThanOrEqual(1e-4);
      expectSameRouting(r, ref.trace, b.loaded.model.cfg);
    };

    // a stroke down the middle of the canvas: a "1"
    const box = (await page.locator('#draw').boundingBox())!;
    await afterRun(page, async () => {
      await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.15);
      await page.mouse.down();
      for (let i = 1; i <= 10; i++)
        await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * (0.15 + 0.07 * i));
      await page.mouse.up();
    });
    const drawn = await inputPixels();
    expect(drawn[0]).toBe(0); // background stays black
    expect(drawn[Math.floor(S / 2) * S + Math.floor(S / 2)]).toBeGreaterThan(200); // the stroke is white
    await expectLikeNode(drawn);

    // test image 2, upscaled 3× by pixel replication into an RGB PNG file: the page shrinks it back to S×S
    const k = 3;
    const src = b.samples.subarray(2 * S * S, 3 * S * S);
    const big = new PNG({ width: k * S, height: k * S });
    for (let y = 0; y < k * S; y++)
      for (let x = 0; x < k * S; x++) {
        const v = src[Math.floor(y / k) * S + Math.floor(x / k)]!;
        big.data.set([v, v, v, 255], 4 * (y * k * S + x));
      }
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'vmoe-web-')), 'garment.png');
    fs.writeFileSync(file, PNG.sync.write(big));
    await afterRun(page, () => page.setInputFiles('#image-file', file));
    const shrunk = await inputPixels();
    // area averaging of 3×3 blocks of one value gives that value back, whatever the browser
    expect(Buffer.from(shrunk).equals(Buffer.from(src))).toBe(true);
    await expectLikeNode(shrunk);
  });

  it('runs on webgl where the browser has it, names it, and stays within 1e-3 of Node', async (ctx) => {
    const d = demos[0]!;
    const b = bundles.get(d.path)!;
    const gl = await browser.newPage();
    gl.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(`webgl page: ${m.text()}`);
    });
    await gl.goto(`${base}?backend=webgl`);
    await gl.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });
    const active = await gl.locator('body').getAttribute('data-backend');
    const note = await gl.locator('#backend-note').textContent();
    if (active !== 'webgl') {
      await gl.close();
      expect(note).toMatch(/webgl is not available/);
      ctx.skip();
    }
    expect(note).toMatch(/^backend webgl/);
    const routing = {
      capacityFactor: b.manifest.model.moe.capacityFactor,
      batchPriority: b.manifest.model.moe.batchPriority,
    };
    let worst = 0;
    for (const i of [0, 1, 2]) {
      await afterRun(gl, () => gl.click(`#samples button[data-index="${i}"]`));
      const r = await readPage(gl);
      const ref = nodeReference(b.loaded, b.manifest, b.samples, i, routing);
      for (const t of r.top) worst = Math.max(worst, Math.abs(t.p - ref.probs[t.cls]!));
    }
    await gl.close();
    console.log(`webgl: largest probability difference from Node ${worst.toExponential(2)}`);
    expect(worst).toBeLessThanOrEqual(1e-3);
  });

  it('logged no console errors', () => {
    expect(consoleErrors).toEqual([]);
  });
});
