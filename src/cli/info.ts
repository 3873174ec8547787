import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { loadCheckpoint } from '../checkpoint/format.js';
import { parseExperiment } from '../config/experiment.js';
import { resolveCheckpoint } from '../checkpoint/load.js';
import { moeBlocks, tokensPerImage } from '../vmoe/config.js';
import { flopsPerImage } from '../vmoe/flops.js';
import { countParams } from '../vmoe/params.js';
import { loadExperiment } from '../config/experiment.js';

export function describeModel(configSource: { checkpoint?: string; config?: string }): Record<string, unknown> {
  let cfgRaw: unknown;
  let training: Record<string, unknown> | null = null;
  if (configSource.checkpoint) {
    const file = resolveCheckpoint(configSource.checkpoint);
    const ck = loadCheckpoint(file);
    cfgRaw = ck.meta.config;
    training = { checkpoint: file, sha256: ck.sha256, step: ck.meta.step, saved: ck.meta.time, engine: ck.meta.engine, versions: ck.meta.versions };
    // the run folder's summary, when the checkpoint sits in one (checkpoints/ beside train_summary.json)
    const summaryFile = path.join(path.dirname(path.dirname(file)), 'train_summary.json');
    if (fs.existsSync(summaryFile)) {
      const s = JSON.parse(fs.readFileSync(summaryFile, 'utf8')) as Record<string, unknown>;
      training.summary = { steps: s.step, seconds: s.seconds, images_per_s: s.images_per_s, final_loss: s.final_loss, val: s.val };
    }
  }
  const cfg = configSource.checkpoint ? parseExperiment(cfgRaw, 'checkpoint config') : loadExperiment(configSource.config ?? null);
  const m = cfg.model;
  const params = countParams(m);
  const flops = flopsPerImage(m);
  return {
    name: cfg.name,
    architecture: {
      type: m.type, image: `${m.imageSize}×${m.imageSize}×${m.channels}`, patch: m.patchSize, tokens: tokensPerImage(m),
      hidden: m.hidden, depth: m.depth, heads: m.heads, mlp: m.mlpDim, classes: m.numClasses, readout: m.readout,
      ensemble: m.type === 'e3' ? m.ensemble : null,
      moe: m.type !== 'vit' ? { blocks: moeBlocks(m), experts: m.moe.numExperts, k: m.moe.k, router: m.moe.router, capacity_factor: m.moe.capacityFactor, group_images: m.moe.groupImages, batch_priority: m.moe.batchPriority } : null,
    },
    parameters: { total: params.total, active_per_token: params.activePerToken },
    flops_per_image: flops,
    training,
  };
}

export function registerInfoCommand(program: Command): void {
  program
    .command('info')
    .description('architecture, parameter counts (total / active per token), FLOPs per image and training summary')
    .argument('[checkpoint]', 'checkpoint file or run folder')
    .option('-c, --config <file>', 'describe a config instead of a checkpoint')
    .action((checkpoint: string | undefined, flags: { config?: string }) => {
      const info = describeModel({ checkpoint, config: flags.config });
      process.stdout.write(JSON.stringify(info, null, 2) + '\n');
    });
}
