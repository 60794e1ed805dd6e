import { defineConfig } from 'vitest/config';

// Integration tests start real replica/engine processes and real NBD clients on a 2-core machine:
// run files one after another so a fio load in one file cannot starve the timeouts of another.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 60_000,
    reporters: ['default'],
  },
});
