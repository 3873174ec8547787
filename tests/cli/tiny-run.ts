import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { vi } from 'vitest';
import { parseExperiment } from '../../src/config/experiment.js';
import { train } from '../../src/train/trainer.js';

/** Trains a tiny V-MoE on MNIST for 4 steps (14×14 patches → 5 tokens, E=4, K=2, MoE in block 1); returns the run folder. */
export async function tinyRun(): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmoe-tiny-run-'));
  const config = parseExperiment({
    name: 'tiny',
    seed: 3,
    model: {
      type: 'vmoe',
      patchSize: 14,
      hidden: 16,
      depth: 2,
      heads: 2,
      mlpDim: 32,
      moe: { numExperts: 4, k: 2, groupImages: 4, layers: { placement: 'list', list: [1] } },
    },
    data: { dataset: 'mnist', valSize: 32, trainLimit: 128 },
    optim: { warmupSteps: 1, lr: 3e-3 },
    train: { batchSize: 16, steps: 4, evalEvery: 0, evalLimit: 32, checkpointEvery: 4, logEvery: 1000 },
  });
  await train({ config, outDir: dir, quiet: true });
  return dir;
}

export const tmpDir = (tag: string) => fs.mkdtempSync(path.join(os.tmpdir(), `vmoe-${tag}-`));

/** Runs one registered command through commander, capturing stdout. */
export async function runCommand(register: (p: Command) => void, args: string[]): Promise<string> {
  const program = new Command().exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
  register(program);
  const chunks: string[] = [];
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((c: string | Uint8Array) => {
    chunks.push(String(c));
    return true;
  });
  const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
  try {
    await program.parseAsync(['node', 'vmoe', ...args]);
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
  return chunks.join('');
}
