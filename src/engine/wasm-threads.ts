/**
 * Multi-threaded wasm in Node. tfjs-backend-wasm 4.22 turns threads off under
 * Node; this module will re-enable them. Until then it reports "not enabled".
 */
export function enableWasmThreads(_threads: number): boolean {
  return false;
}
