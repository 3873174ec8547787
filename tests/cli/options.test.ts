/**
 * The thin commands turn flags into typed library options before anything runs: malformed values are a
 * UsageError naming the flag, and the options carry parsed numbers and selections.
 */
import { describe, expect, it } from 'vitest';
import { fewShotOptionsFromFlags } from '../../src/cli/fewshot.js';
import { robustnessOptionsFromFlags } from '../../src/cli/robustness.js';
import { routingOptionsFromFlags } from '../../src/cli/routing.js';
import { sweepOptionsFromFlags } from '../../src/cli/sweep.js';
import { selectCorruptions } from '../../src/eval/robustness.js';
import { UsageError } from '../../src/util/errors.js';

const robustness = (extra: Record<string, unknown> = {}) => ({
  checkpoint: ['run'],
  label: [],
  split: 'test',
  suite: 'c',
  corruptions: 'contrast, gaussian_noise',
  severities: '1,3-4',
  batchSize: '8',
  seed: '2',
  bins: '10',
  format: 'table',
  ...extra,
});

describe('robustnessOptionsFromFlags', () => {
  it('selects the named corruptions in suite order at the parsed severities', () => {
    const o = robustnessOptionsFromFlags(robustness());
    expect(o.corruptions).toEqual([
      { name: 'gaussian_noise', severities: [1, 3, 4] },
      { name: 'contrast', severities: [1, 3, 4] },
    ]);
    expect([o.seed, o.bins, o.batchSize, o.data.limit]).toEqual([2, 10, 8, undefined]);
  });

  it('keeps the one MNIST-C level per corruption', () => {
    const o = robustnessOptionsFromFlags(robustness({ suite: 'mnist-c', corruptions: 'rotate', severities: '9' }));
    expect(o.corruptions).toEqual([{ name: 'rotate', severities: [1] }]);
  });

  it.each([
    [{ seed: '-1' }, /--seed: expected a non-negative integer, got "-1"/],
    [{ seed: 'x' }, /--seed/],
    [{ bins: '0' }, /--bins/],
    [{ limit: '2.5' }, /--limit/],
    [{ severities: '6' }, /--severities: 6 is outside/],
    [{ corruptions: 'rain' }, /unknown corruption\(s\) rain for suite c/],
    [{ suite: 'x' }, /--suite must be c or mnist-c/],
    [{ checkpoint: [] }, /--checkpoint: give at least one model/],
  ])('refuses %j with a UsageError naming the flag', (extra, pattern) => {
    expect(() => robustnessOptionsFromFlags(robustness(extra))).toThrow(UsageError);
    expect(() => robustnessOptionsFromFlags(robustness(extra))).toThrow(pattern);
  });

  it('selectCorruptions: all of a suite, or the named ones', () => {
    expect(selectCorruptions('mnist-c', 'all').length).toBe(15);
    expect(selectCorruptions('c', ['spatter']).map((c) => c.severities)).toEqual([[1, 2, 3, 4, 5]]);
  });
});

describe('fewShotOptionsFromFlags', () => {
  const flags = (extra: Record<string, unknown> = {}) => ({
    checkpoint: ['run'],
    datasets: 'mnist, fashion-mnist',
    shots: '1,5',
    seeds: '2',
    probe: 'logreg',
    trainPool: '100',
    batchSize: '16',
    cacheDir: '.c',
    format: 'table',
    ...extra,
  });

  it('parses shots, seeds, data sets and the λ selection', () => {
    const o = fewShotOptionsFromFlags(flags({ selectBy: 'nll', testLimit: '50' }));
    expect([o.datasets, o.shots, o.seeds, o.selectBy, o.trainPool, o.testLimit]).toEqual([
      ['mnist', 'fashion-mnist'],
      [1, 5],
      2,
      'nll',
      100,
      50,
    ]);
  });

  it.each([
    [{ selectBy: 'loss' }, /--select-by must be accuracy or nll, got "loss"/],
    [{ probe: 'svm' }, /--probe must be lsr or logreg/],
    [{ shots: '1,x' }, /--shots/],
    [{ datasets: ' , ' }, /--datasets: give at least one data set/],
    [{ trainPool: '0' }, /--train-pool/],
  ])('refuses %j', (extra, pattern) => {
    expect(() => fewShotOptionsFromFlags(flags(extra))).toThrow(pattern);
  });
});

describe('sweep and routing options', () => {
  it('sweep: lists of capacity factors and K, the routing modes', () => {
    const o = sweepOptionsFromFlags({
      checkpoint: 'run',
      split: 'test',
      batchSize: '4',
      capacityFactors: '0.5, 1',
      k: '1,2',
      batchPriority: 'on',
      bins: '15',
      format: 'csv',
      quiet: true,
    });
    expect([o.capacityFactors, o.ks, o.batchPriority, o.onRow]).toEqual([[0.5, 1], [1, 2], 'on', undefined]);
    expect(() =>
      sweepOptionsFromFlags({
        checkpoint: 'run',
        split: 'test',
        batchSize: '4',
        capacityFactors: '0.5',
        batchPriority: 'on',
        bins: '15',
        format: 'csv',
        limit: '-3',
      }),
    ).toThrow(/--limit/);
  });

  it('routing: the low capacity and overlay sizes', () => {
    const o = routingOptionsFromFlags({
      checkpoint: 'run',
      split: 'val',
      batchSize: '20',
      capacityFactor: '0.25',
      images: '3',
      shareImages: '8',
    });
    expect([o.lowCapacity, o.images, o.shareImages, o.data.split]).toEqual([0.25, 3, 8, 'val']);
    expect(() =>
      routingOptionsFromFlags({
        checkpoint: 'run',
        split: 'val',
        batchSize: '20',
        capacityFactor: '0',
        images: '3',
        shareImages: '8',
      }),
    ).toThrow(/--capacity-factor/);
  });
});
