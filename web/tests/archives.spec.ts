import { expect, test, type Locator, type Page } from '@playwright/test';
import { apiSignup, expectAccessible, expectPlaying, publishTestPattern, SCREENSHOTS, signUpThroughPage, uniqueName } from './helpers';

/** Waits for `page` to show the video, reloading while it is not there yet. */
async function gotoUntil(page: Page, path: string, ready: Locator, timeout = 30_000) {
  await expect(async () => {
    await page.goto(path);
    await expect(ready).toBeVisible({ timeout: 2_000 });
  }).toPass({ timeout });
}

test('a recorded broadcast becomes a past broadcast that plays, and a viewer clips it', async ({ page, request }) => {
  test.setTimeout(180_000);
  const creator = await apiSignup(request, 'rec_');
  const auth = { authorization: `Bearer ${creator.token}` };
  const key = await (await request.get('/api/me/stream-key', { headers: auth })).json();

  // A viewer, signed in, on the live channel: a recorded broadcast offers "Clip".
  await signUpThroughPage(page, uniqueName('clipper_'));
  const ffmpeg = publishTestPattern(key.rtmp_url, key.stream_key);
  try {
    await gotoUntil(page, `/c/${creator.username}`, page.getByLabel(/Live video/));
    await expectPlaying(page.getByLabel(/Live video/));
    await page.waitForTimeout(6_000);
    await page.getByRole('button', { name: 'Clip', exact: true }).click();
    await expect(page).toHaveURL(/\/clips\/[^/]+$/);
    await expect(page.getByText('Processing…').or(page.getByLabel(/^Clip:/))).toBeVisible();
  } finally {
    ffmpeg.kill('SIGINT');
  }

  // After the grace window the broadcast ends and its archive is listed on the channel.
  const archives = async () =>
    (await (await request.get(`/api/users/${creator.id}/archives`)).json()).data as { id: string; title: string; status: string }[];
  await expect.poll(async () => (await archives()).length, { timeout: 30_000 }).toBe(1);
  const [archive] = await archives();
  await page.goto(`/c/${creator.username}`);
  const past = page.getByRole('region', { name: 'Past broadcasts' });
  await past.getByRole('link', { name: archive.title }).click();
  await expect(page).toHaveURL(`/videos/${archive.id}`);
  await expect(page.getByRole('heading', { name: archive.title, level: 1 })).toBeVisible();
  const video = page.getByLabel(/^Video:/);
  await expectPlaying(video);

  // The job runner processes it: after a reload the replay plays and no processing line is left.
  const status = async () => (await (await request.get(`/api/archives/${archive.id}`)).json()).status;
  await expect.poll(status, { timeout: 60_000 }).toBe('ready');
  await page.reload();
  await expect(page.getByLabel(/^Video:/)).toBeVisible();
  await expect(page.getByText(/Processing/)).toHaveCount(0);
  // Its exact length, once ready.
  await expect(page.locator('.stream-meta')).toHaveText(/ · \d+:\d\d$/);
  await expectPlaying(page.getByLabel(/^Video:/));
  await page.screenshot({ path: `${SCREENSHOTS}archive.png`, fullPage: true });
  await expectAccessible(page, 'archive');

  // The viewer clips where the video is and lands on the clip's page, which plays once cut.
  await page.getByRole('button', { name: 'Clip', exact: true }).click();
  await expect(page).toHaveURL(/\/clips\/[^/]+$/);
  const clipUrl = new URL(page.url()).pathname;
  await expect(page.getByRole('heading', { name: archive.title, level: 1 })).toBeVisible();
  await expect(page.getByRole('link', { name: creator.username })).toHaveAttribute('href', `/c/${creator.username}`);
  // Once cut, the archives' player plays the clip's own HLS playlist.
  const clipPlaylist = page.waitForResponse((r) => /\/media\/clips\/[^/]+\/index\.m3u8$/.test(r.url()) && r.ok(), {
    timeout: 60_000,
  });
  const clipVideo = page.getByLabel(/^Video:/);
  await expect(clipVideo).toBeVisible({ timeout: 60_000 });
  await clipPlaylist;
  await expectPlaying(clipVideo);
  await page.screenshot({ path: `${SCREENSHOTS}clip.png`, fullPage: true });
  await expectAccessible(page, 'clip');

  // The channel lists the clip; its clipper deletes it, and its page then says so.
  await page.goto(`/c/${creator.username}`);
  // Newest first: the archive's clip, then the live one.
  const clips = page.getByRole('region', { name: 'Clips' }).getByRole('link', { name: archive.title });
  await expect(clips).toHaveCount(2);
  await clips.first().click();
  await expect(page).toHaveURL(clipUrl);
  await page.getByRole('button', { name: 'Delete clip' }).click();
  await expect(page).toHaveURL(`/c/${creator.username}`);
  await page.goto(clipUrl);
  await expect(page.getByRole('heading', { name: 'Clip not found' })).toBeVisible();
});
