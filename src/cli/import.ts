/** `vmoe import`: a google-research/vmoe checkpoint into one of ours (checkpoint/import.ts). */
import type { Command } from 'commander';
import { importCheckpoint } from '../checkpoint/import.js';
import { collect, parsePositiveInt, parsePositiveNumber } from './common.js';

interface ImportFlags {
  out: string;
  numSelectedExperts?: string;
  groupSize?: string;
  capacityFactor?: string;
  batchPriority?: boolean;
  set: string[];
}

export function registerImportCommand(program: Command): void {
  program
    .command('import')
    .description(
      'import a google-research/vmoe checkpoint (PREFIX.index + PREFIX.data-*): infer the architecture, map the parameters, write OUT/checkpoints/checkpoint-0.vmoe',
    )
    .argument('<checkpoint>', 'the checkpoint prefix or its .index file')
    .requiredOption('--out <dir>', 'folder to write (a new one)')
    .option('--num-selected-experts <k>', 'experts per token (K), as the reference config names it (default 2; E³: 1)')
    .option(
      '--group-size <tokens>',
      'tokens per routing group, as in the reference configs (E³: members × tokens × images)',
    )
    .option('--capacity-factor <c>', 'expert capacity factor (default 1.05)')
    .option('--batch-priority', 'Batch Prioritized Routing')
    .option('--no-batch-priority', 'vanilla routing (the default)')
    .option(
      '--set <key=value>',
      'override an inferred setting, e.g. --set model.moe.noiseStd=0 (repeatable)',
      collect,
      [],
    )
    .action((ckpt: string, flags: ImportFlags) => {
      const summary = importCheckpoint(ckpt, flags.out, {
        numSelectedExperts: flags.numSelectedExperts
          ? parsePositiveInt(flags.numSelectedExperts, '--num-selected-experts')
          : undefined,
        groupSize: flags.groupSize ? parsePositiveInt(flags.groupSize, '--group-size') : undefined,
        capacityFactor: flags.capacityFactor
          ? parsePositiveNumber(flags.capacityFactor, '--capacity-factor')
          : undefined,
        batchPriority: flags.batchPriority,
        overrides: flags.set,
      });
      const a = summary.architecture;
      const moe =
        a.type === 'vit'
          ? ''
          : `, MoE in blocks ${a.moeBlocks.join(',')} with ${a.numExperts} experts${a.members ? `, ${a.members} members` : ''}`;
      process.stdout.write(
        `imported ${summary.source} (${summary.shards} shard${summary.shards > 1 ? 's' : ''}, ${summary.dtypes.join('/')}): ` +
          `${a.type} ${a.imageSize}px/${a.patchSize}, hidden ${a.hidden}, ${a.depth} blocks, ${a.heads} heads, MLP ${a.mlpDim}${moe}, ${a.numClasses} classes\n` +
          `wrote ${summary.checkpoint} and ${summary.summaryFile}\n`,
      );
    });
}
