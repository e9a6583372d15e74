import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defineConfig } from '@playwright/test';

// One real `onair` per run, on a fresh SQLite directory. Set in the environment so the
// workers (started after this file is read) see the same server.
process.env.UI_TEST_PORT ??= String(20000 + Math.floor(Math.random() * 20000));
process.env.UI_TEST_RTMP_PORT ??= String(Number(process.env.UI_TEST_PORT) + 1);
process.env.UI_TEST_DATA ??= mkdtempSync(join(tmpdir(), 'onair-ui-'));
// Tipping talks to a stand-in for Stripe's API (tests/stripe-stand-in.mjs); the tests sign
// its webhooks with the same secret the server checks them with.
process.env.UI_TEST_STRIPE_PORT ??= String(Number(process.env.UI_TEST_PORT) + 2);
process.env.UI_TEST_STRIPE_WEBHOOK_SECRET ??= `whsec_ui_${Math.random().toString(36).slice(2)}`;
const port = process.env.UI_TEST_PORT;
const base = `http://127.0.0.1:${port}`;
const rtmp = `127.0.0.1:${process.env.UI_TEST_RTMP_PORT}`;
const STRIPE_STAND_IN = `http://127.0.0.1:${process.env.UI_TEST_STRIPE_PORT}`;
const stripeSecretKey = 'sk_test_onair_ui';

export default defineConfig({
  testDir: 'tests',
  outputDir: 'test-results',
  fullyParallel: false,
  workers: 1,
  // axe-core takes 1–4 s a page; tests that check several pages need the room.
  timeout: 60_000,
  reporter: [['list']],
  use: {
    baseURL: base,
    headless: true,
    // Debian's Chromium (scripts/setup installs it); Playwright never downloads a browser.
    launchOptions: { executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium', args: ['--no-sandbox'] },
  },
  webServer: [
    {
      command: 'node tests/stripe-stand-in.mjs',
      url: `${STRIPE_STAND_IN}/`,
      reuseExistingServer: false,
      stdout: 'ignore',
      stderr: 'pipe',
      env: { PORT: process.env.UI_TEST_STRIPE_PORT!, STRIPE_SECRET_KEY: stripeSecretKey },
    },
    {
      command: process.env.ONAIR_TEST_UI_BIN ?? '../target/debug/onair',
      url: `${base}/readyz`,
      reuseExistingServer: false,
      timeout: 120_000,
      stdout: 'ignore',
      stderr: 'pipe',
      env: {
        ONAIR_BIND: `127.0.0.1:${port}`,
        ONAIR_DATA_DIR: process.env.UI_TEST_DATA!,
        ONAIR_RTMP_BIND: rtmp,
        ONAIR_SRT_BIND: '127.0.0.1:0',
        ONAIR_PUBLIC_RTMP_URL: `rtmp://${rtmp}/live`,
        ONAIR_RECONNECT_GRACE_SECS: '5',
        // Viewer counts reach the list within a second instead of five.
        ONAIR_VIEWER_FLUSH_MS: '200',
        ONAIR_VIEWER_PERSIST_MS: '300',
        ONAIR_LOG: 'warn',
        // Every test's browser calls the API from 127.0.0.1, faster than any one client may.
        ONAIR_RATE_LIMIT_ENABLED: 'false',
        STRIPE_SECRET_KEY: stripeSecretKey,
        STRIPE_WEBHOOK_SECRET: process.env.UI_TEST_STRIPE_WEBHOOK_SECRET!,
        STRIPE_PUBLISHABLE_KEY: 'pk_test_onair_ui',
        ONAIR_STRIPE_API_BASE: STRIPE_STAND_IN,
      },
    },
  ],
});
