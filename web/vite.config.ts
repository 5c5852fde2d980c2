// Builds the dashboard and customer portal (one single-page app) into web/dist, which Koppel
// serves (src/ui/static.ts). Run with `npm run build:web` from the repository root.
import { fileURLToPath } from 'node:url';
import react from '@vitejs/plugin-react';
import tailwindcss from '@tailwindcss/vite';
import { defineConfig } from 'vite';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  plugins: [react(), tailwindcss()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // The Content-Security-Policy forbids inline code: keep every asset a file, even tiny ones.
    assetsInlineLimit: 0,
    // No module-preload polyfill: it is an inline-ish helper the CSP has no need to allow.
    modulePreload: { polyfill: false },
    sourcemap: false,
  },
  server: { proxy: { '/api': 'http://localhost:8071' } },
});
