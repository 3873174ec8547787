/** `vmoe predict`: a checkpoint's logits and pre-logits on a .npy array of images (eval/predict.ts). */
import type { Command } from 'commander';
import { predict } from '../eval/predict.js';
import { addEngineOptions, parsePositiveInt, startEngine } from './common.js';
import { routingFromFlags } from './eval.js';

interface PredictFlags {
  checkpoint: string;
  input: string;
  out: string;
  batchSize?: string;
  capacityFactor?: string;
  capacity?: string;
  batchPriority?: boolean;
  k?: string;
  groupImages?: string;
  backend?: string;
  threads?: string;
}

export function registerPredictCommand(program: Command): void {
  addEngineOptions(
    program
      .command('predict')
      .description(
        "logits (members' logits for E³), log-probabilities and pre-logits of a checkpoint on images in a .npy file, written as .npy",
      )
      .requiredOption(
        '--checkpoint <path>',
        'checkpoint file, checkpoints/ folder or run folder (e.g. one `vmoe import` wrote)',
      )
      .requiredOption('--input <file>', '(N, H, W, C) images: float32 = model-ready values, uint8 = raw pixels')
      .requiredOption('--out <dir>', 'folder for logits.npy, log_probs.npy (E³), pre_logits.npy, predict.json')
      .option('--batch-size <n>', "images per forward pass (default: the config's eval.batchSize)")
      .option('--capacity-factor <c>', 'override the expert capacity factor')
      .option('--capacity <n>', 'override with an absolute capacity per group')
      .option('--batch-priority', 'use Batch Prioritized Routing')
      .option('--no-batch-priority', 'use vanilla (position-order) routing')
      .option('--k <n>', 'override the number of experts per token')
      .option('--group-images <n>', 'images per routing group'),
  ).action(async (flags: PredictFlags) => {
    await startEngine(flags);
    const r = predict(flags.checkpoint, flags.input, flags.out, {
      routing: routingFromFlags(flags),
      batchSize: flags.batchSize ? parsePositiveInt(flags.batchSize, '--batch-size') : undefined,
    });
    process.stdout.write(`${r.n} images → ${r.files.join(', ')}\n`);
  });
}
