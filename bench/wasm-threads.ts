/**
 * Micro-benchmark: tfjs wasm backend with 1 vs N threads (default 2).
 *
 *   npx vite-node bench/wasm-threads.ts                       # 1 vs 2 threads
 *   npx vite-node bench/wasm-threads.ts -- --threads 4 --rounds 3
 *
 * The thread count of the wasm backend is fixed once per process, so the
 * parent runs each count in a child process (`--child N`), alternating
 * 1, N, 1, N, … for `--rounds` rounds, and keeps each case's best median:
 * on a shared machine the best round is the one least disturbed by others.
 */
import * as tf from '@tensorflow/tfjs-core';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { initEngine } from '../src/engine/index.js';

interface Case {
  name: string;
  /** Floating-point operations per run, for GFLOP/s (0: not reported). */
  flops: number;
  setup: () => () => tf.Tensor;
}

const fill = (n: number, f: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(f * (i + 1)));

const CASES: Case[] = [
  {
    name: 'matMul (3200,64)@(64,256)',
    flops: 2 * 3200 * 64 * 256,
    setup: () => {
      const a = tf.tensor2d(fill(3200 * 64, 0.3), [3200, 64]);
      const b = tf.tensor2d(fill(64 * 256, 0.7), [64, 256]);
      return () => tf.matMul(a, b);
    },
  },
  {
    name: 'matMul (256,256)@(256,256)',
    flops: 2 * 256 ** 3,
    setup: () => {
      const a = tf.tensor2d(fill(256 * 256, 0.3), [256, 256]);
      const b = tf.tensor2d(fill(256 * 256, 0.7), [256, 256]);
      return () => tf.matMul(a, b);
    },
  },
  {
    name: 'elementwise chain, 1M floats',
    flops: 0,
    setup: () => {
      const x = tf.tensor1d(fill(1 << 20, 0.01));
      // GELU (tanh form): the heaviest elementwise chain the models run.
      return () =>
        tf.tidy(() => {
          const inner = tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), Math.sqrt(2 / Math.PI));
          return tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(inner), 1));
        });
    },
  },
];

/** Median ms of `fn` after warm-up, repeating for at least ~0.6 s. */
function timeIt(fn: () => tf.Tensor): number {
  for (let i = 0; i < 3; i++) fn().dataSync();
  const times: number[] = [];
  const start = performance.now();
  while (times.length < 5 || (performance.now() - start < 600 && times.length < 200)) {
    const t0 = performance.now();
    const y = fn();
    y.dataSync();
    times.push(performance.now() - t0);
    y.dispose();
  }
  times.sort((p, q) => p - q);
  return times[times.length >> 1]!;
}

async function child(threads: number): Promise<void> {
  const info = await initEngine({ backend: 'wasm', threads, quiet: true });
  const ms = CASES.map((c) => timeIt(c.setup()));
  process.stdout.write(JSON.stringify({ threads: info.threads, simd: info.simd, ms }) + '\n');
}

interface ChildResult {
  threads: number;
  simd: boolean;
  ms: number[];
}

function parent(threads: number, rounds: number): void {
  const self = fileURLToPath(import.meta.url);
  const run = (n: number): ChildResult => {
    const r = spawnSync('npx', ['vite-node', self, '--', '--child', String(n)], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`bench child (${n} threads) failed:\n${r.stderr}`);
    return JSON.parse(r.stdout.trim().split('\n').pop()!) as ChildResult;
  };
  const best = (a: ChildResult | null, b: ChildResult): ChildResult =>
    a ? { ...b, ms: b.ms.map((m, i) => Math.min(m, a.ms[i]!)) } : b;
  let one: ChildResult | null = null;
  let many: ChildResult | null = null;
  for (let r = 0; r < rounds; r++) {
    one = best(one, run(1));
    many = best(many, run(threads));
  }
  const [o, m] = [one!, many!];
  console.log(`wasm backend, SIMD=${o.simd}; threads reported: ${o.threads} vs ${m.threads}; best of ${rounds} rounds`);
  console.log(
    `${'case'.padEnd(30)} ${'1 thr ms'.padStart(9)} ${`${m.threads} thr ms`.padStart(9)} ${'speed-up'.padStart(9)}`,
  );
  CASES.forEach((c, i) => {
    const gflops = c.flops
      ? `  (${(c.flops / o.ms[i]! / 1e6).toFixed(1)} → ${(c.flops / m.ms[i]! / 1e6).toFixed(1)} GFLOP/s)`
      : '';
    console.log(
      `${c.name.padEnd(30)} ${o.ms[i]!.toFixed(2).padStart(9)} ${m.ms[i]!.toFixed(2).padStart(9)} ${(o.ms[i]! / m.ms[i]!).toFixed(2).padStart(8)}×${gflops}`,
    );
  });
}

const args = process.argv.slice(2);
const flag = (name: string): number | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : undefined;
};
const childThreads = flag('--child');
if (childThreads !== undefined) await child(childThreads);
else parent(flag('--threads') ?? 2, flag('--rounds') ?? 3);
