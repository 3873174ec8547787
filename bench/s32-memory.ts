/**
 * Peak memory of training steps at the S/32 scale (docs/finetuning.md § Memory): the model of a config
 * (default configs/s32-vmoe.json), its optimizer, and `--steps` training steps (forward, task + aux loss,
 * gradients in train.accumSteps micro-batches, optimizer update — what the trainer's step does) on seeded
 * synthetic images in [−1, 1]. Prints one JSON line with the process's peak RSS and the step times.
 *
 *   node bench/s32-memory.js --config configs/s32-vmoe.json --set train.batchSize=64 --set train.accumSteps=1
 *
 * Run compiled (see docs/finetuning.md), not under vite-node, so the RSS is the workload's own.
 */
import * as tf from '@tensorflow/tfjs-core';
import { initEngine, engineInfo } from '../src/engine/index.js';
import { loadExperiment } from '../src/config/experiment.js';
import { makeOptimizer } from '../src/train/optimizer.js';
import { stepGradients } from '../src/train/trainer.js';
import { VisionMoE } from '../src/vmoe/model.js';
import { paramSpecs } from '../src/vmoe/params.js';
import { Rng } from '../src/util/rng.js';

function args(argv: string[]): { config: string; set: string[]; steps: number; threads: number } {
  const out = { config: 'configs/s32-vmoe.json', set: [] as string[], steps: 3, threads: 1 };
  for (let i = 0; i + 1 < argv.length; i++) {
    const a = argv[i]!,
      v = argv[i + 1]!;
    if (a === '--config') out.config = v;
    else if (a === '--set') out.set.push(v);
    else if (a === '--steps') out.steps = Number(v);
    else if (a === '--threads') out.threads = Number(v);
    else continue;
    i++;
  }
  return out;
}

async function main(): Promise<void> {
  const a = args(process.argv.slice(2));
  await initEngine({ backend: 'auto', threads: a.threads, quiet: true });
  const cfg = loadExperiment(a.config, a.set);
  const mc = cfg.model;
  const B = cfg.train.batchSize;
  const model = VisionMoE.init(mc, cfg.seed);
  const specs = paramSpecs(mc);
  const opt = makeOptimizer(cfg.optim, (n) => specs.get(n)?.decay ?? false);
  const vars = [...model.params.values()];
  const nameOf = new Map([...model.params].map(([n, v]) => [v.name, n]));
  const rng = new Rng(cfg.seed + 1);
  const data = new Rng(7);
  const pixels = B * mc.imageSize * mc.imageSize * mc.channels;
  const stepMs: number[] = [];
  const losses: number[] = [];
  for (let s = 0; s < a.steps; s++) {
    const x = Float32Array.from({ length: pixels }, () => 2 * data.uniform() - 1);
    const y = Int32Array.from({ length: B }, () => data.int(mc.numClasses));
    const t0 = performance.now();
    tf.tidy(() => {
      const g = stepGradients(
        model,
        vars,
        tf.tensor4d(x, [B, mc.imageSize, mc.imageSize, mc.channels]),
        tf.tensor1d(y, 'int32'),
        { numClasses: mc.numClasses, labelSmoothing: 0, accumSteps: cfg.train.accumSteps, rng },
      );
      losses.push(g.task + g.aux);
      const byName: Record<string, tf.Tensor> = {};
      for (const [v, t] of g.grads) byName[nameOf.get(v)!] = t;
      opt.apply(model.params, byName, 1e-3);
    });
    stepMs.push(performance.now() - t0);
  }
  const e = engineInfo();
  process.stdout.write(
    JSON.stringify({
      config: a.config,
      overrides: a.set,
      backend: e.backend,
      threads: e.threads,
      batch: B,
      accum_steps: cfg.train.accumSteps,
      micro_batch: B / cfg.train.accumSteps,
      image: mc.imageSize,
      channels: mc.channels,
      params: vars.reduce((n, v) => n + v.size, 0),
      steps: a.steps,
      step_ms: stepMs.map((m) => Math.round(m)),
      losses,
      peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
      tf_bytes_mb: Math.round(tf.memory().numBytes / 2 ** 20),
    }) + '\n',
  );
}

await main();
