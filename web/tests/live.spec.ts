import { expect, test, type Browser } from '@playwright/test';
import { expectAccessible, publishTestPattern, SCREENSHOTS, signUpThroughPage, uniqueName } from './helpers';

/** A viewer page; with `hlsJs`, the browser claims no native HLS so the player uses hls.js. */
async function viewerPage(browser: Browser, hlsJs: boolean) {
  const context = await browser.newContext();
  if (hlsJs) {
    await context.addInitScript(() => {
      const native = HTMLMediaElement.prototype.canPlayType;
      HTMLMediaElement.prototype.canPlayType = function (type: string) {
        return type.includes('mpegurl') ? '' : native.call(this, type);
      };
    });
  }
  return context.newPage();
}

for (const hlsJs of [false, true]) {
  test(`a creator publishes with ffmpeg to the key from the dashboard and a viewer watches (${hlsJs ? 'hls.js' : 'native HLS'})`, async ({ page, browser }) => {
    test.setTimeout(150_000);
    await signUpThroughPage(page, uniqueName('live_'));
    await page.getByRole('link', { name: 'Dashboard' }).click();
    await page.getByRole('button', { name: 'Reveal stream key' }).click();
    const key = (await page.getByText(/^live_/).textContent())!;
    const server = (await page.getByText(/^rtmp:\/\//).textContent())!;
    const channel = (await page.getByRole('link', { name: 'your channel' }).getAttribute('href'))!;

    let ffmpeg = publishTestPattern(server, key);
    try {
      const viewer = await viewerPage(browser, hlsJs);
      const requested: string[] = [];
      viewer.on('request', (request) => requested.push(request.url()));
      await expect(async () => {
        await viewer.goto(channel);
        await expect(viewer.getByLabel(/Live video/)).toBeVisible({ timeout: 2_000 });
      }).toPass({ timeout: 30_000 });
      // Playing: the video's clock advances.
      const video = viewer.getByLabel(/Live video/);
      const clock = () => video.evaluate((v: HTMLVideoElement) => v.currentTime);
      await expect.poll(clock, { timeout: 30_000 }).toBeGreaterThan(1);
      const start = await clock();
      await expect.poll(clock, { timeout: 10_000 }).toBeGreaterThan(start + 1);
      if (hlsJs) {
        // hls.js in low-latency mode: it holds playlist reloads on the server until the next
        // part exists, and fetches parts rather than waiting for whole segments.
        expect(requested.some((url) => /index\.m3u8\?.*_HLS_msn=\d+/.test(url))).toBe(true);
        expect(requested.some((url) => /\/part_\d+_[0-9a-f]+_\d+\.m4s/.test(url))).toBe(true);
      }
      // The quality menu: auto plus each rendition of the master playlist (a 360p source:
      // itself and the rung below it).
      const options = () => viewer.getByLabel('Quality').locator('option').allTextContents();
      await expect.poll(options).toContain('180p');
      expect((await options())[0]).toMatch(/^Auto/);
      expect((await options()).length).toBeGreaterThanOrEqual(3);
      await viewer.getByLabel('Quality').selectOption({ label: '180p' });
      await expect(viewer.getByText('Playing 180p')).toBeVisible({ timeout: 15_000 });
      await expect(viewer.getByText(/\d+ viewers?/)).toBeVisible();
      if (!hlsJs) await viewer.screenshot({ path: `${SCREENSHOTS}channel-playing.png` });
      await expectAccessible(viewer, 'channel (playing)');

      // hls.js only: Chromium's native HLS does not always come back after the break
      // (see the README), which the watchdog's reload does not yet fix on a busy server.
      if (hlsJs) {
        // The encoder drops and reconnects inside the grace window: the broadcast resumes and
        // the player picks it up again. Once what was buffered before the drop has played
        // out, a clock that still advances is playing the resumed broadcast.
        const ahead = await video.evaluate((v: HTMLVideoElement) =>
          v.buffered.length ? v.buffered.end(v.buffered.length - 1) - v.currentTime : 0,
        );
        ffmpeg.kill('SIGKILL');
        await viewer.waitForTimeout(1_000);
        ffmpeg = publishTestPattern(server, key);
        await viewer.waitForTimeout(Math.max(0, ahead) * 1_000 + 1_000);
        await expect(async () => {
          const before = await clock();
          await viewer.waitForTimeout(1_500);
          expect(await clock()).toBeGreaterThan(before + 0.5);
        }).toPass({ timeout: 45_000 });
      }

      // The publisher stops for good: the page shows the interruption (and later the offline state).
      ffmpeg.kill('SIGINT');
      await expect(viewer.getByRole('status').filter({ hasText: /interrupted|offline/ }).first()).toBeVisible({ timeout: 30_000 });
    } finally {
      ffmpeg.kill('SIGKILL');
    }
  });
}
