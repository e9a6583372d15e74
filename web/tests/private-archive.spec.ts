import { expect, test } from '@playwright/test';
import { apiSignup, expectPlaying, publishTestPattern } from './helpers';

test("a private past broadcast plays for its owner and for nobody else", async ({ page, browser, request }) => {
  test.setTimeout(120_000);
  const creator = await apiSignup(request, 'priv_');
  const auth = { authorization: `Bearer ${creator.token}` };
  const key = await (await request.get('/api/me/stream-key', { headers: auth })).json();
  const ffmpeg = publishTestPattern(key.rtmp_url, key.stream_key);
  const listed = async () => (await (await request.get(`/api/users/${creator.id}/archives`, { headers: auth })).json()).data;
  try {
    // Live for a few seconds, so the recording has segments.
    await expect.poll(async () => (await (await request.get(`/api/users/${creator.id}/streams?limit=1`)).json()).data[0]?.status, {
      timeout: 30_000,
    }).toBe('live');
    await new Promise((resolve) => setTimeout(resolve, 6_000));
  } finally {
    ffmpeg.kill('SIGINT');
  }
  await expect.poll(async () => (await listed()).length, { timeout: 30_000 }).toBe(1);
  const [archive] = await listed();
  const made = await request.patch(`/api/archives/${archive.id}`, { headers: auth, data: { visibility: 'private' } });
  expect(made.ok()).toBeTruthy();
  const privateUrl: string = (await made.json()).playlist_url;
  expect(privateUrl).toContain('?token=');

  // Its owner, signed in, watches it: the player follows the tokenized playlists.
  await page.goto('/login');
  await page.getByLabel('Username or email').fill(creator.username);
  await page.getByLabel('Password').fill('correct horse battery');
  await page.getByRole('button', { name: 'Log in' }).click();
  await expect(page.getByRole('button', { name: 'Log out' })).toBeVisible();
  await page.goto(`/videos/${archive.id}`);
  await expectPlaying(page.getByLabel(/^Video:/));

  // Anyone else finds neither the page nor the media.
  const stranger = await browser.newPage();
  await stranger.goto(`/videos/${archive.id}`);
  await expect(stranger.getByRole('heading', { name: 'Video not found' })).toBeVisible();
  // (Processing may have replaced the recording by the VOD meanwhile: ask again.)
  const current: string = (await (await request.get(`/api/archives/${archive.id}`, { headers: auth })).json()).playlist_url;
  expect((await request.get(current.split('?')[0])).status()).toBe(404);
  expect((await request.get(current)).status()).toBe(200);
  await stranger.close();
});
