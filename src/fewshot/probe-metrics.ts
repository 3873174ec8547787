/**
 * The two probabilistic metrics the probes report. Kept local to src/fewshot so the probes do
 * not wait on src/metrics; the conventions are those of evaluation.md (NLL from logits through
 * log-softmax; top-label ECE, equal-width bins [lo, hi), confidence 1.0 in the last bin, empty
 * bins skipped).
 */

/** Mean −log softmax(z_n)[y_n] over rows of (N, K) logits. */
export function meanNllFromLogits(logits: Float64Array, labels: ArrayLike<number>, numClasses: number): number {
  const n = labels.length;
  const k = numClasses;
  if (logits.length !== n * k) throw new Error(`meanNll: logits have ${logits.length} values, expected ${n}·${k}`);
  let total = 0;
  for (let i = 0; i < n; i++) {
    let mx = -Infinity;
    for (let c = 0; c < k; c++) mx = Math.max(mx, logits[i * k + c]!);
    let s = 0;
    for (let c = 0; c < k; c++) s += Math.exp(logits[i * k + c]! - mx);
    total += mx + Math.log(s) - logits[i * k + labels[i]!]!;
  }
  return total / n;
}

/** Top-label expected calibration error of (N, K) probabilities, `numBins` equal-width bins. */
export function topLabelEce(probs: Float64Array, labels: ArrayLike<number>, numClasses: number, numBins = 15): number {
  const n = labels.length;
  const k = numClasses;
  if (probs.length !== n * k) throw new Error(`topLabelEce: probabilities have ${probs.length} values, expected ${n}·${k}`);
  const count = new Float64Array(numBins);
  const hits = new Float64Array(numBins);
  const confSum = new Float64Array(numBins);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let c = 1; c < k; c++) if (probs[i * k + c]! > probs[i * k + best]!) best = c;
    const conf = probs[i * k + best]!;
    const bin = Math.min(numBins - 1, Math.floor(conf * numBins));
    count[bin]! += 1;
    confSum[bin]! += conf;
    if (best === labels[i]) hits[bin]! += 1;
  }
  let ece = 0;
  for (let b = 0; b < numBins; b++) {
    if (count[b] === 0) continue;
    ece += (count[b]! / n) * Math.abs(hits[b]! / count[b]! - confSum[b]! / count[b]!);
  }
  return ece;
}
