import { defineConfig } from 'vitest/config';

const everything = ['src/**/*.test.ts', 'test/**/*.test.ts'];
// The API and delivery suites run a second time on PostgreSQL when a database is configured
// (.ci/run always configures one); the store contract has its own PostgreSQL file.
const onBothStores = ['test/api/**/*.test.ts', 'test/delivery/**/*.test.ts', 'test/smoke.test.ts', 'test/sources/**/*.test.ts', 'test/integration/**/*.test.ts', 'test/examples/**/*.test.ts'];

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Delivery and crash tests start servers and child processes; keep parallelism modest on 2 cores.
    maxWorkers: 2,
    env: { KOPPEL_LOG_LEVEL: 'silent' },
    // Builds the web UI (web/ → web/dist) once when it is missing or older than its sources, so
    // `npm ci && npm test` works on a clean clone and the browser tests see the current UI.
    globalSetup: ['test/build-web.ts'],
    projects: [
      { extends: true as const, test: { name: 'sqlite', include: everything } },
      ...(process.env.KOPPEL_TEST_DATABASE_URL
        ? [{ extends: true as const, test: { name: 'postgres', include: onBothStores, env: { KOPPEL_LOG_LEVEL: 'silent', KOPPEL_TEST_STORE: 'postgres' } } }]
        : []),
    ],
  },
});
