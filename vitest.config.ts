import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Delivery and crash tests start servers and child processes; keep parallelism modest on 2 cores.
    maxWorkers: 2,
    env: { KOPPEL_LOG_LEVEL: 'silent' },
  },
});
