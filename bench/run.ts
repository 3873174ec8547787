/**
 * Benchmark harness (issue 8): throughput of vit-tiny / vmoe-tiny / e3-tiny
 * and of the S/32 models vit-s32 / vmoe-s32 (issue 17, suite s32),
 * MoE layer vs an equal-FLOPs dense MLP, MoE time against capacity factor,
 * batch-size scaling with peak memory, and optionally the PyTorch peer.
 *
 *   npm run bench                       # full run (≈ 5–10 min on 2 cores)
 *   npm run bench -- --quick            # < 2 min
 *   npm run bench -- --peer             # also the peers at 1 and 2 threads, and the ratios: torch_peer.py, and
 *                                       # jax_peer.py (the reference on XLA) when VMOE_JAX_PYTHON, VMOE_SRC and
 *                                       # VIT_SRC are set
 *   npm run bench -- --threads 1,2 --only models --no-save
 *   npx vite-node bench/run.ts -- --quick   # without compiling
 *
 * stdout: one JSON object per line; stderr: progress and a summary table.
 * Each measurement runs in a child process, so peak RSS is that workload's
 * own and the wasm thread count can differ between runs. Results are
 * appended to bench/results/history.jsonl (with date, backend, commit) and
 * the latest table is written to bench/results/latest.md.
 * Timings on a shared machine are noisy: compare ratios from one run.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  bestOfRepeats,
  comparePeer,
  markdownTable,
  parseArgs,
  SUITES,
  type BenchArgs,
  type PeerResult,
} from './lib/stats.js';
import { MODEL_NAMES, peerArgs, S32_NAMES, type BenchModelName } from './lib/configs.js';

const self = fileURLToPath(import.meta.url);
const require = createRequire(import.meta.url);

/**
 * The repository root: VMOE_REPO_ROOT (set by bench/bench.mjs, whose compiled copy
 * lives under node_modules/.cache), else the nearest folder above with a package.json.
 */
function repoRoot(): string {
  if (process.env.VMOE_REPO_ROOT) return process.env.VMOE_REPO_ROOT;
  for (let dir = path.dirname(self); ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`no package.json above ${self}`);
  }
}
const root = repoRoot();

type Job =
  | { kind: 'model'; suite: string; name: BenchModelName; batch: number; threads: number; warmup: number; runs: number }
  | { kind: 'moe-vs-dense' | 'capacity'; suite: string; batch: number; threads: number; warmup: number; runs: number }
  | {
      kind: 'layers';
      suite: string;
      name: BenchModelName;
      batch: number;
      threads: number;
      warmup: number;
      runs: number;
    };

type Rec = Record<string, unknown>;

async function runChild(jobJson: string, backend: string): Promise<void> {
  const job = JSON.parse(jobJson) as Job;
  const { initEngine } = await import('../src/engine/index.js');
  await initEngine({ backend: backend as 'auto', threads: job.threads, quiet: true });
  const cases = await import('./lib/cases.js');
  const t = { warmup: job.warmup, runs: job.runs };
  let out: Rec[];
  if (job.kind === 'model') out = [cases.modelThroughput(job.name, job.batch, t) as unknown as Rec];
  else if (job.kind === 'moe-vs-dense') out = [cases.moeVsDense(job.batch, t)];
  else if (job.kind === 'layers') out = cases.layerGflops(job.name, job.batch, t);
  else out = cases.capacitySweep(job.batch, t);
  for (const r of out) process.stdout.write(JSON.stringify({ ...r, suite: job.suite }) + '\n');
}

/** Command that re-runs this script: compiled JS under node, or the .ts source under vite-node. */
function childCommand(extra: string[]): [string, string[]] {
  if (self.endsWith('.ts')) {
    const viteNode = path.join(path.dirname(require.resolve('vite-node/package.json')), 'vite-node.mjs');
    return [process.execPath, [viteNode, self, '--', ...extra]];
  }
  return [process.execPath, [self, ...extra]];
}

function spawnJob(job: Job, args: BenchArgs): Rec[] {
  const [cmd, argv] = childCommand(['--child', JSON.stringify(job), '--backend', args.backend]);
  const r = spawnSync(cmd, argv, { encoding: 'utf8', cwd: root, maxBuffer: 1 << 26 });
  if (r.status !== 0) {
    const tail = `${r.stderr ?? ''}`.trim().split('\n').slice(-8).join('\n');
    return [
      {
        name: job.kind === 'model' || job.kind === 'layers' ? job.name : job.kind,
        suite: job.suite,
        error: `child failed (exit ${r.status ?? r.signal}): ${tail}`,
      },
    ];
  }
  return r.stdout
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Rec);
}

function plan(args: BenchArgs): Job[] {
  const wants = (s: string) => args.only.length === 0 || args.only.includes(s);
  // Steady state, as a long training run sees it: V8 keeps optimising a step's JavaScript over its
  // first 10-20 calls (vmoe-tiny training: median 116 ms over steps 6-25, 82 ms over steps 6-65,
  // same process), so the full run warms up 10 steps; the peer's PyTorch needs only its 2.
  const t = args.quick ? { warmup: 3, runs: 5 } : { warmup: 10, runs: 20 };
  const big = args.quick ? { warmup: 1, runs: 2 } : { warmup: 3, runs: 5 };
  // Layer studies: cheap calls, so many interleaved rounds (a ratio of minima needs them). 30
  // warm-up rounds: with 10, the MoE layer's JavaScript was still being optimised during the
  // timed rounds of moe-vs-dense (median 14.6–15.3 ms there against 12.5–12.8 ms for the same
  // call in the capacity sweep, whose 7 variants warm it 7× as often); with 30 both agree.
  const layer = args.quick ? { warmup: 3, runs: 5 } : { warmup: 30, runs: 60 };
  // S/32 (issue 17): a training step at batch 64 takes seconds, so one warm-up step and a few timed ones.
  const s32 = args.quick ? { warmup: 1, runs: 1 } : { warmup: 1, runs: 3 };
  const jobs: Job[] = [];
  for (const threads of args.threads) {
    if (wants('models'))
      for (const name of MODEL_NAMES)
        jobs.push({ kind: 'model', suite: 'models', name, batch: args.batch, threads, ...t });
    if (wants('s32'))
      for (const name of S32_NAMES)
        jobs.push({ kind: 'model', suite: 's32', name, batch: args.batch, threads, ...s32 });
    // GFLOP/s per layer type at the S/32 shapes (the V-MoE has every layer type).
    if (wants('layers'))
      jobs.push({ kind: 'layers', suite: 'layers', name: 'vmoe-s32', batch: args.batch, threads, ...s32 });
    if (threads !== args.threads[0]) continue; // the layer studies and batch scaling run at the first thread count only
    if (wants('moe-vs-dense'))
      jobs.push({ kind: 'moe-vs-dense', suite: 'moe-vs-dense', batch: args.batch, threads, ...layer });
    if (wants('capacity')) jobs.push({ kind: 'capacity', suite: 'capacity', batch: args.batch, threads, ...layer });
    if (wants('batch-scaling')) {
      for (const batch of [16, 64, 256]) {
        if (batch === args.batch && wants('models')) continue; // measured with the models
        jobs.push({
          kind: 'model',
          suite: 'batch-scaling',
          name: 'vmoe-tiny',
          batch,
          threads,
          ...(batch >= 256 ? big : t),
        });
      }
    }
  }
  return jobs;
}

/**
 * The speed peers, each run with the same shapes as our models: PyTorch (../shared/bench/torch_peer.py) and the
 * reference implementation on JAX/XLA (../shared/bench/jax_peer.py, google-research/vmoe's own model). A peer whose
 * interpreter or sources are not set up is skipped with one line saying how.
 */
interface Peer {
  /** Backend label of its records: torch | xla. */
  backend: 'torch' | 'xla';
  python: string;
  script: string;
  /** Why it cannot run here, or null. */
  missing: string | null;
}

function peers(): Peer[] {
  const shared = path.resolve(root, '..', 'shared', 'bench');
  const torchScript = process.env.VMOE_PEER_SCRIPT || path.join(shared, 'torch_peer.py');
  const jaxScript = process.env.VMOE_JAX_SCRIPT || path.join(shared, 'jax_peer.py');
  const jaxPython = process.env.VMOE_JAX_PYTHON || '';
  const srcMissing = ['VMOE_SRC', 'VIT_SRC'].filter((v) => !process.env[v] || !fs.existsSync(process.env[v]!));
  return [
    {
      backend: 'torch',
      python: process.env.VMOE_PEER_PYTHON || '/usr/bin/python3',
      script: torchScript,
      missing: fs.existsSync(torchScript) ? null : `peer script not found: ${torchScript} (set VMOE_PEER_SCRIPT)`,
    },
    {
      backend: 'xla',
      python: jaxPython,
      script: jaxScript,
      missing: !fs.existsSync(jaxScript)
        ? `jax peer script not found: ${jaxScript} (set VMOE_JAX_SCRIPT)`
        : !jaxPython
          ? 'jax peer skipped: set VMOE_JAX_PYTHON to a python with jax, flax and optax (docs/performance.md)'
          : srcMissing.length
            ? `jax peer skipped: set ${srcMissing.join(' and ')} to checkouts of google-research/vmoe and vision_transformer`
            : null,
    },
  ];
}

function runPeer(args: BenchArgs): Rec[] {
  const out: Rec[] = [];
  const wants = (suite: string) => args.only.length === 0 || args.only.includes(suite);
  const names = [
    ...(wants('models') ? MODEL_NAMES.map((n) => [n, args.quick ? 5 : 20] as const) : []),
    ...(wants('s32') ? S32_NAMES.map((n) => [n, args.quick ? 2 : 3] as const) : []),
  ];
  for (const peer of peers()) {
    if (peer.missing) {
      process.stderr.write(`[bench] ${peer.missing}\n`);
      out.push({ name: `peer-${peer.backend}`, suite: 'peer', backend: peer.backend, error: peer.missing });
      continue;
    }
    for (const [name, steps] of names) {
      for (const threads of [1, 2]) {
        const a = peerArgs(name, args.batch, threads, steps);
        if (!a) continue;
        process.stderr.write(`[bench] peer ${peer.backend} ${name} ${threads} thread(s)…\n`);
        const r = spawnSync(peer.python, [peer.script, ...a], { encoding: 'utf8', env: process.env });
        if (r.status !== 0) {
          out.push({
            name,
            suite: 'peer',
            backend: peer.backend,
            threads,
            error: `${peer.python} ${path.basename(peer.script)} failed: ${(r.stderr || r.error?.message || '').trim().split('\n').pop()}`,
          });
          continue;
        }
        const line = r.stdout.trim().split('\n').pop()!;
        out.push({ ...(JSON.parse(line) as Rec), name, suite: 'peer', backend: peer.backend, steps });
      }
    }
  }
  return out;
}

/** ours / each peer (its best thread setting), and ours / the best of all peers, per model and our thread count. */
function peerRatios(records: Rec[]): Rec[] {
  const out: Rec[] = [];
  for (const name of [...MODEL_NAMES, ...S32_NAMES]) {
    const all = bestOfRepeats(
      records.filter((r) => r.suite === 'peer' && r.name === name && !r.error),
    ) as unknown as PeerResult[];
    const ours = bestOfRepeats(records.filter((r) => (r.suite === 'models' || r.suite === 's32') && r.name === name));
    if (!all.length || !ours.length) continue;
    const groups = [...new Set(all.map((p) => p.backend ?? 'peer'))].map((b): [string, PeerResult[]] => [
      b,
      all.filter((p) => (p.backend ?? 'peer') === b),
    ]);
    if (groups.length > 1) groups.push(['best of peers', all]);
    for (const o of ours) {
      for (const [label, ps] of groups) {
        const cmp = comparePeer(o as unknown as PeerResult, ps);
        out.push({
          name: `${name} / ${label}`,
          suite: 'peer-ratio',
          backend: o.backend,
          threads: o.threads,
          batch: o.batch,
          repeats: o.repeats,
          ...cmp,
        });
      }
    }
  }
  return out;
}

function gitCommit(): string {
  const rev = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' });
  if (rev.status !== 0) return 'unknown';
  const dirty = spawnSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: root, encoding: 'utf8' });
  return rev.stdout.trim() + (dirty.stdout.trim() ? '+dirty' : '');
}

/** GFLOP/s and share of peak recomputed from a best-of-repeats row's images/s (the row keeps its first repeat's). */
function gflopsOfBest(r: Rec): Rec {
  const g = Number(r.gflop_per_image),
    peak = Number(r.peak_gflop_per_s);
  const train = 3 * g * Number(r.train_images_per_s),
    infer = g * Number(r.infer_images_per_s);
  return {
    ...r,
    train_gflop_per_s: train,
    infer_gflop_per_s: infer,
    train_share_of_peak: peak > 0 ? train / peak : null,
    infer_share_of_peak: peak > 0 ? infer / peak : null,
  };
}

function summary(records: Rec[], meta: Rec): string {
  const sections: string[] = [
    `Benchmark ${meta.date} · commit ${meta.commit} · backend ${meta.backend} · ${meta.quick ? 'quick' : 'full'} run · one run on a shared machine: compare ratios, not absolute numbers.`,
  ];
  const pick = (suite: string) => records.filter((r) => r.suite === suite);
  const failed = records.filter((r) => r.error && ['models', 'batch-scaling', 's32', 'peer'].includes(String(r.suite)));
  const models = [
    ...bestOfRepeats([...pick('models'), ...pick('s32'), ...pick('batch-scaling'), ...pick('peer')]),
    ...failed,
  ];
  if (models.length) {
    sections.push(
      `Throughput: best of ${meta.repeat} alternating repeat(s) of our runs and the peer's (median step time within each run).`,
    );
    sections.push(
      markdownTable(models, [
        'name',
        'suite',
        'backend',
        'threads',
        'batch',
        'repeats',
        'train_images_per_s',
        'infer_images_per_s',
        'peak_rss_mb',
        'wasm_heap_mb',
        'error',
      ]),
    );
  }
  if (pick('s32').length) {
    sections.push(
      'S/32 speed against the machine: forward matMul FLOPs per image (src/vmoe/flops.ts; a training step counts 3×) ' +
        'against the peak of the threads used (clock × 32 float32 FLOPs per cycle per core with AVX2 + FMA).',
    );
    sections.push(
      markdownTable(bestOfRepeats(pick('s32')).map(gflopsOfBest), [
        'name',
        'threads',
        'batch',
        'gflop_per_image',
        'train_gflop_per_s',
        'infer_gflop_per_s',
        'peak_gflop_per_s',
        'train_share_of_peak',
        'infer_share_of_peak',
      ]),
    );
  }
  if (pick('layers').length) {
    sections.push(
      'GFLOP/s per layer type at the S/32 shapes (batch as given), each through the kernel the toolkit runs for it, ' +
        'against the peak of the threads used.',
    );
    sections.push(
      markdownTable(pick('layers'), [
        'layer',
        'threads',
        'rows',
        'ms',
        'gflop_per_s',
        'peak_gflop_per_s',
        'share_of_peak',
      ]),
    );
  }
  if (pick('peer-ratio').length) {
    sections.push(
      markdownTable(pick('peer-ratio'), [
        'name',
        'backend',
        'threads',
        'batch',
        'repeats',
        'train_ratio',
        'infer_ratio',
        'peer_best_train',
        'peer_best_infer',
        'rss_ratio',
      ]),
    );
  }
  if (pick('moe-vs-dense').length)
    sections.push(
      markdownTable(pick('moe-vs-dense'), [
        'name',
        'backend',
        'threads',
        'tokens',
        'dense_width',
        'rounds',
        'moe_ms',
        'dense_ms',
        'moe_over_dense',
        'moe_min_ms',
        'dense_min_ms',
        'moe_over_dense_min',
        'error',
      ]),
    );
  if (pick('capacity').length)
    sections.push(
      markdownTable(pick('capacity'), [
        'name',
        'backend',
        'threads',
        'capacity_factor',
        'rounds',
        'moe_ms',
        'time_vs_1_05',
        'moe_min_ms',
        'time_vs_1_05_min',
        'error',
      ]),
    );
  return sections.join('\n\n') + '\n';
}

async function main(): Promise<void> {
  const defaultThreads = Number(process.env.VMOE_THREADS) || 1;
  const args = parseArgs(process.argv.slice(2), defaultThreads);
  if (args.child) return runChild(args.child, args.backend);
  const t0 = performance.now();
  const records: Rec[] = [];
  const emit = (r: Rec) => {
    records.push(r);
    process.stdout.write(JSON.stringify(r) + '\n');
  };
  const jobs = plan(args);
  const run = (job: Job, extra: Rec = {}) => {
    process.stderr.write(
      `[bench] ${job.kind === 'model' || job.kind === 'layers' ? job.name : job.kind} (batch ${job.batch}, ${job.threads} thread(s))…\n`,
    );
    for (const r of spawnJob(job, args)) emit({ ...r, ...extra });
  };
  // Our models and the peer alternate, so a slow spell of the machine is unlikely to hit only one side.
  const compared = jobs.filter((j) => j.kind === 'model' && (j.suite === 'models' || j.suite === 's32'));
  for (let rep = 0; rep < args.repeat; rep++) {
    for (const job of compared) run(job, { repeat: rep });
    if (args.peer) for (const r of runPeer(args)) emit({ ...r, repeat: rep });
  }
  for (const job of jobs.filter((j) => !compared.includes(j))) run(job);
  if (args.peer) for (const r of peerRatios(records)) emit(r);
  const backend =
    [...new Set(records.map((r) => r.backend).filter((b) => b && b !== 'torch' && b !== 'xla'))].join(',') || 'unknown';
  const meta = {
    date: new Date().toISOString(),
    commit: gitCommit(),
    backend,
    quick: args.quick,
    repeat: args.repeat,
    suites: args.only.length ? args.only : SUITES,
    seconds: Math.round((performance.now() - t0) / 1000),
  };
  const table = summary(records, meta);
  process.stderr.write('\n' + table);
  if (args.save) {
    const dir = path.join(root, 'bench', 'results');
    fs.mkdirSync(dir, { recursive: true });
    fs.appendFileSync(
      path.join(dir, 'history.jsonl'),
      records.map((r) => JSON.stringify({ ...meta, ...r })).join('\n') + '\n',
    );
    fs.writeFileSync(path.join(dir, 'latest.md'), `# Latest benchmark\n\n${table}`);
    process.stderr.write(
      `[bench] results appended to bench/results/history.jsonl; table in bench/results/latest.md (${meta.seconds} s)\n`,
    );
  }
}

await main();
