/**
 * What a checkpoint or config describes (`vmoe info`): the architecture, parameter counts (total and active per
 * token), FLOPs per image and, for a checkpoint, its file, hash, step, engine and versions, plus the run's
 * training summary when the checkpoint sits in a run folder.
 */
import fs from 'node:fs';
import path from 'node:path';
import { loadCheckpoint } from '../checkpoint/format.js';
import { resolveCheckpoint } from '../checkpoint/load.js';
import { loadExperiment, parseExperiment } from '../config/experiment.js';
import { moeBlocks, tokensPerImage } from '../vmoe/config.js';
import { flopsPerImage } from '../vmoe/flops.js';
import { countParams } from '../vmoe/params.js';

/** The description of a checkpoint (`checkpoint`) or of a config file (`config`; neither: the default config) as `vmoe info` prints it. */
export function describeModel(configSource: { checkpoint?: string; config?: string }): Record<string, unknown> {
  let cfgRaw: unknown;
  let training: Record<string, unknown> | null = null;
  if (configSource.checkpoint) {
    const file = resolveCheckpoint(configSource.checkpoint);
    const ck = loadCheckpoint(file);
    cfgRaw = ck.meta.config;
    training = {
      checkpoint: file,
      sha256: ck.sha256,
      step: ck.meta.step,
      saved: ck.meta.time,
      engine: ck.meta.engine,
      versions: ck.meta.versions,
      // `vmoe import`: the source files, their SHA-256, what was inferred and the routing flags given
      ...(ck.meta.imported ? { imported: ck.meta.imported } : {}),
    };
    // the run folder's summary, when the checkpoint sits in one (checkpoints/ beside train_summary.json)
    const summaryFile = path.join(path.dirname(path.dirname(file)), 'train_summary.json');
    if (fs.existsSync(summaryFile)) {
      const s = JSON.parse(fs.readFileSync(summaryFile, 'utf8')) as Record<string, unknown>;
      training.summary = {
        steps: s.step,
        seconds: s.seconds,
        images_per_s: s.images_per_s,
        final_loss: s.final_loss,
        val: s.val,
      };
    }
  }
  const cfg = configSource.checkpoint
    ? parseExperiment(cfgRaw, 'checkpoint config')
    : loadExperiment(configSource.config ?? null);
  const m = cfg.model;
  const params = countParams(m);
  const flops = flopsPerImage(m);
  return {
    name: cfg.name,
    architecture: {
      type: m.type,
      image: `${m.imageSize}×${m.imageSize}×${m.channels}`,
      patch: m.patchSize,
      tokens: tokensPerImage(m),
      hidden: m.hidden,
      depth: m.depth,
      heads: m.heads,
      mlp: m.mlpDim,
      classes: m.numClasses,
      readout: m.readout,
      ensemble: m.type === 'e3' ? m.ensemble : null,
      moe:
        m.type !== 'vit'
          ? {
              blocks: moeBlocks(m),
              experts: m.moe.numExperts,
              k: m.moe.k,
              router: m.moe.router,
              capacity_factor: m.moe.capacityFactor,
              group_images: m.moe.groupImages,
              batch_priority: m.moe.batchPriority,
            }
          : null,
    },
    parameters: { total: params.total, active_per_token: params.activePerToken },
    flops_per_image: flops,
    training,
  };
}
