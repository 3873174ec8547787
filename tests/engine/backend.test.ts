import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '../../src/engine/index.js';

describe('engine', () => {
  it('initialises wasm and computes a matMul equal to the hand result', async () => {
    const info = await initEngine({ backend: 'wasm', quiet: true });
    expect(info.backend).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
    // [[1,2],[3,4]] @ [[5,6],[7,8]] = [[19,22],[43,50]]
    const y = tf.matMul(
      tf.tensor2d([
        [1, 2],
        [3, 4],
      ]),
      tf.tensor2d([
        [5, 6],
        [7, 8],
      ]),
    );
    expect(Array.from(await y.data())).toEqual([19, 22, 43, 50]);
  });
  it('names the missing package when a native backend is forced', async () => {
    await expect(initEngine({ backend: 'node', quiet: true })).rejects.toThrow(/tfjs-node/);
  });
});
