import { defineConfig } from 'vite';

// The Rust build (crates/onair-web/build.rs) passes --outDir; assets get content hashes
// and the binary serves them as immutable.
export default defineConfig({
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    target: 'es2022',
    assetsDir: 'assets',
    // No inline data: URLs, so the CSP needs no exceptions for them.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    // hls.js (~180 KB compressed) is its own chunk, loaded only by the player.
    chunkSizeWarningLimit: 600,
  },
  server: { proxy: { '/api': 'http://127.0.0.1:8080', '/live': 'http://127.0.0.1:8080' } },
});
