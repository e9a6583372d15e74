import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';
import { defineConfig, type Plugin } from 'vite';

// Text files the server sends compressed. Images and video are compressed already.
const COMPRESSIBLE = /\.(js|css|svg|html|json|webmanifest|txt)$/;

/**
 * Writes `<file>.br` and `<file>.gz` beside every compressible output file, at the
 * strongest settings (done once per build, not per request). The server embeds them and
 * answers with the best one the request's Accept-Encoding allows.
 */
function precompress(): Plugin {
  return {
    name: 'onair-precompress',
    apply: 'build',
    writeBundle(options) {
      const dir = options.dir!;
      const files = readdirSync(dir, { recursive: true, encoding: 'utf8' });
      for (const file of files.filter((f) => COMPRESSIBLE.test(f))) {
        const path = join(dir, file);
        const body = readFileSync(path);
        const variants: [string, Buffer][] = [
          ['br', brotliCompressSync(body, { params: { [constants.BROTLI_PARAM_QUALITY]: constants.BROTLI_MAX_QUALITY } })],
          ['gz', gzipSync(body, { level: constants.Z_BEST_COMPRESSION })],
        ];
        for (const [extension, compressed] of variants) {
          // A tiny file can grow; then the server sends it as it is.
          if (compressed.length < body.length) writeFileSync(`${path}.${extension}`, compressed);
        }
      }
    },
  };
}

// The Rust build (crates/onair-web/build.rs) passes --outDir; assets get content hashes
// and the binary serves them as immutable.
export default defineConfig({
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  plugins: [precompress()],
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
