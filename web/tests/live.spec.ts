import { spawn } from 'node:child_process';
import { expect, test, type Browser } from '@playwright/test';
import { expectAccessible, SCREENSHOTS, signUpThroughPage, uniqueName } from './helpers';

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
    test.setTimeout(90_000);
    await signUpThroughPage(page, uniqueName('live_'));
    await page.getByRole('link', { name: 'Dashboard' }).click();
    await page.getByRole('button', { name: 'Reveal stream key' }).click();
    const key = (await page.getByText(/^live_/).textContent())!;
    const server = (await page.getByText(/^rtmp:\/\//).textContent())!;
    const channel = (await page.getByRole('link', { name: 'your channel' }).getAttribute('href'))!;

    const ffmpeg = spawn(
      'ffmpeg',
      ['-loglevel', 'error', '-re', '-f', 'lavfi', '-i', 'testsrc=size=640x360:rate=30', '-f', 'lavfi', '-i', 'sine=frequency=440',
        '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-g', '30', '-pix_fmt', 'yuv420p', '-c:a', 'aac',
        '-f', 'flv', `${server}/${key}`],
      { stdio: 'ignore' },
    );
    try {
      const viewer = await viewerPage(browser, hlsJs);
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
      // The quality menu: auto plus each rendition of the master playlist.
      const options = () => viewer.getByLabel('Quality').locator('option').allTextContents();
      await expect.poll(options).toContain('360p');
      expect((await options())[0]).toMatch(/^Auto/);
      expect((await options()).length).toBeGreaterThanOrEqual(3);
      await viewer.getByLabel('Quality').selectOption({ label: '360p' });
      await expect(viewer.getByText('Playing 360p')).toBeVisible({ timeout: 15_000 });
      await expect(viewer.getByText(/\d+ viewers?/)).toBeVisible();
      if (!hlsJs) await viewer.screenshot({ path: `${SCREENSHOTS}channel-playing.png` });
      await expectAccessible(viewer, 'channel (playing)');

      // The publisher stops: the page shows the interruption (and later the offline state).
      ffmpeg.kill('SIGINT');
      await expect(viewer.getByRole('status').filter({ hasText: /interrupted|offline/ }).first()).toBeVisible({ timeout: 30_000 });
    } finally {
      ffmpeg.kill('SIGKILL');
    }
  });
}
