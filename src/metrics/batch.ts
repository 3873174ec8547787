/**
 * Helpers of the streaming accumulators (not part of the public metrics API): the shape every
 * batch must share, and in-order summation, which is what makes streaming equal one-shot exactly.
 */
import { type ClassScores, type Labels, checkScores, members } from './types.js';
import { DataError } from '../util/errors.js';

/** The class count K and member count M of the first batch; later batches must match them. */
export class BatchShape {
  private k = 0;
  private m = 0;

  constructor(private readonly name: string) {}

  /** Validates a batch; true for the first one (so the caller can size its state). */
  check(x: ClassScores): boolean {
    checkScores(x, this.name);
    const m = members(x);
    if (this.k === 0) {
      this.k = x.k;
      this.m = m;
      return true;
    }
    if (x.k !== this.k) throw new DataError(`${this.name}.k = ${x.k} differs from k = ${this.k} of earlier updates`);
    if (m !== this.m) throw new DataError(`${this.name} has m = ${m} members but earlier updates had m = ${this.m}`);
    return false;
  }
}

/** `start` plus the entries of x, added in order. */
export function addAll(start: number, x: ArrayLike<number>): number {
  let s = start;
  for (let i = 0; i < x.length; i++) s += x[i]!;
  return s;
}

/** What every accumulator shares: the batch shape and the number of examples seen. */
export abstract class BatchAccumulator {
  protected n = 0;
  protected readonly shape: BatchShape;

  constructor(
    private readonly what: string,
    scoresName: string,
  ) {
    this.shape = new BatchShape(scoresName);
  }

  /** Number of examples seen. */
  get count(): number {
    return this.n;
  }

  /** The example count, for a result; throws before the first update. */
  protected seen(): number {
    if (this.n === 0) throw new DataError(`${this.what} has no examples yet`);
    return this.n;
  }
}

/** Mean over examples of a quantity whose batch sum `addSum` adds to a running total (in example order). */
export class MeanAccumulator extends BatchAccumulator {
  private total = 0;

  constructor(
    what: string,
    scoresName: string,
    private readonly addSum: (total: number, scores: ClassScores, labels: Labels) => number,
  ) {
    super(what, scoresName);
  }

  /** Add a batch of scores (N, K) or member scores (M, N, K) with labels (N). */
  update(scores: ClassScores, labels: Labels): this {
    this.shape.check(scores);
    this.total = this.addSum(this.total, scores, labels);
    this.n += scores.n;
    return this;
  }

  /** The mean over every example added so far. */
  result(): number {
    return this.total / this.seen();
  }
}
