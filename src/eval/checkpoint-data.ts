/**
 * The data set a command evaluates a checkpoint on: the one named, else the one the checkpoint was trained on,
 * from the folder named, else the checkpoint's data folder, with the checkpoint's validation size (so `val` and
 * `train` mean the same examples as in training).
 */
import { loadDataset, type ImageDataset, type Split } from '../data/index.js';
import type { ExperimentConfig } from '../config/experiment.js';

/** Which data a command was asked for; each field left out falls back to the checkpoint's config. */
export interface DataSelection {
  dataset?: string;
  split: Split;
  dataDir?: string;
  limit?: number;
}

/** Loads the selected split for a model trained under `config` (see the file header for the fallbacks). */
export function loadDatasetFor(config: ExperimentConfig, sel: DataSelection): ImageDataset {
  return loadDataset(sel.dataset ?? config.data.dataset, sel.split, {
    dataDir: sel.dataDir ?? config.data.dataDir ?? undefined,
    valSize: config.data.valSize,
    limit: sel.limit,
    ...fitFor(config),
  });
}

/** Load options that fit a data set to the model trained under `config` (its size, channels, CIFAR-100 labels). */
export function fitFor(config: ExperimentConfig): {
  imageSize: number;
  channels: number;
  label: 'fine' | 'coarse';
  centralCrop: number;
} {
  return {
    imageSize: config.model.imageSize,
    channels: config.model.channels,
    label: config.data.label ?? 'fine',
    centralCrop: config.data.evalCrop ?? 1,
  };
}
