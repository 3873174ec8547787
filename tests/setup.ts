import { afterEach } from 'vitest';

// Tensor-heavy tests run synchronously and block the worker's event loop; a macrotask turn after each test lets
// vitest's worker RPC replies arrive before their 60 s timeout ("Timeout calling onTaskUpdate") on slow machines.
afterEach(async () => {
  await new Promise((resolve) => setImmediate(resolve));
});
