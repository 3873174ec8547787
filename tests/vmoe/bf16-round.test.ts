/** roundToBfloat16 (tensor, Veltkamp split) against the host's round-to-nearest-even of the bit pattern. */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initEngine } from '../../src/engine/index.js';
import { roundToBfloat16 } from '../../src/vmoe/moe.js';
import { floatToBfloat16Bits } from '../../src/util/npy.js';
import { Rng } from '../../src/util/rng.js';

beforeAll(async () => {
  await initEngine({ backend: 'wasm', quiet: true, threads: 1 });
});

describe('roundToBfloat16', () => {
  it('equals round-to-nearest-even of the float32 bits, ties and signs included', () => {
    const rng = new Rng(3);
    const n = 4096;
    const x = new Float32Array(n);
    for (let i = 0; i < n; i++) x[i] = (rng.normal() * 10) ** 3;
    // exact ties: 1 + 2^-8 (rounds down to even 1), 1 + 3·2^-8 (rounds up), their negatives, and tiny values
    x.set([1 + 2 ** -8, 1 + 3 * 2 ** -8, -(1 + 2 ** -8), -(1 + 3 * 2 ** -8), 2 ** -100, 0, -0, 65504.5], 0);
    const got = roundToBfloat16(tf.tensor2d(x, [n / 64, 64])).dataSync() as Float32Array;
    const want = new Float32Array(new Uint32Array(Array.from(floatToBfloat16Bits(x), (b) => b << 16)).buffer);
    for (let i = 0; i < n; i++) expect(got[i], `x = ${x[i]}`).toBe(want[i]);
  });
});
