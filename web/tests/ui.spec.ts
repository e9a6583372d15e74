import { expect, test, type Response } from '@playwright/test';
import { anonymousHeartbeat, apiSignup, expectAccessible, goLive, publishTestPattern, SCREENSHOTS, signUpThroughPage, uniqueName } from './helpers';

test('sign up, log out, log in and edit the profile through the pages', async ({ page }) => {
  const username = uniqueName('ui_');
  await signUpThroughPage(page, username);
  await expect(page).toHaveURL('/');

  // The session survives a reload (the httpOnly refresh cookie), and logging out ends it.
  await page.reload();
  await expect(page.getByRole('button', { name: 'Log out' })).toBeVisible();
  await page.getByRole('button', { name: 'Log out' }).click();
  await expect(page.getByRole('link', { name: 'Log in' })).toBeVisible();
  await expect(page.getByRole('button', { name: 'Log out' })).toHaveCount(0);
  await page.reload();
  await expect(page.getByRole('link', { name: 'Log in' })).toBeVisible();
  await expect(page.getByRole('button', { name: 'Log out' })).toHaveCount(0);

  await page.getByRole('link', { name: 'Log in' }).click();
  await page.getByLabel('Username or email').fill(username);
  await page.getByLabel('Password').fill('wrong password!');
  await page.getByRole('button', { name: 'Log in' }).click();
  await expect(page.getByRole('alert')).toBeVisible();
  await page.getByLabel('Password').fill('correct horse battery');
  await page.getByRole('button', { name: 'Log in' }).click();
  await expect(page.getByRole('button', { name: 'Log out' })).toBeVisible();

  await page.getByRole('link', { name: 'Settings' }).click();
  await page.getByLabel('Display name').fill('<b>Not bold</b>');
  await page.getByLabel('Bio').fill('Speedruns nightly');
  await page.getByRole('button', { name: 'Save profile' }).click();
  await expect(page.getByRole('status')).toHaveText('Profile saved.');
  await page.reload();
  await expect(page.getByLabel('Display name')).toHaveValue('<b>Not bold</b>');

  // The tokens never land where other scripts could read them: the refresh cookie is httpOnly.
  const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }) + document.cookie);
  expect(stored).toBe('{}{}');
  const cookies = await page.context().cookies();
  expect(cookies.map(({ name, httpOnly, sameSite, path }) => ({ name, httpOnly, sameSite, path }))).toEqual([
    { name: 'onair_refresh', httpOnly: true, sameSite: 'Strict', path: '/api/auth' },
  ]);
});

test('home lists live channels by viewers; the channel page shows the player, counts and follows', async ({ page, request }) => {
  const quiet = await apiSignup(request, 'quiet_');
  const popular = await apiSignup(request, 'popular_');
  await goLive(request, quiet, 'Quiet stream', 'Chess');
  const popularStream = await goLive(request, popular, '<img src=x onerror=alert(1)> Any% run', 'Games');
  for (let viewer = 0; viewer < 3; viewer++) {
    expect(await anonymousHeartbeat(request, popularStream)).toBe(204);
  }
  await expect
    .poll(async () => (await (await request.get(`/api/streams/${popularStream}`)).json()).viewer_count)
    .toBe(3);

  await page.goto('/');
  const cards = page.getByRole('listitem');
  await expect(cards.first()).toContainText('<img src=x onerror=alert(1)> Any% run');
  await expect(cards.first()).toContainText('3 viewers');
  await expect(cards.first()).toContainText('Games');
  await expect(page.getByText('Quiet stream')).toBeVisible();
  await expect(page.locator('main img')).toHaveCount(0);
  await page.screenshot({ path: `${SCREENSHOTS}home.png`, fullPage: true });
  await expectAccessible(page, 'home');

  await signUpThroughPage(page, uniqueName('fan_'));
  await page.getByRole('link', { name: /Any% run/ }).click();
  await expect(page.getByRole('heading', { level: 1, name: popular.username })).toBeVisible();
  await expect(page.getByLabel(/Live video/)).toBeVisible();
  await expect(page.getByLabel('Quality')).toBeVisible();
  await expect(page.getByText('3 viewers')).toBeVisible();

  await page.getByRole('button', { name: 'Follow' }).click();
  await expect(page.getByRole('button', { name: 'Unfollow' })).toBeVisible();
  await expect(page.getByText('1 follower')).toBeVisible();
  await page.getByRole('button', { name: 'Unfollow' }).click();
  await expect(page.getByRole('button', { name: 'Follow' })).toBeVisible();
  await expect(page.getByText('0 followers')).toBeVisible();
  await page.screenshot({ path: `${SCREENSHOTS}channel.png`, fullPage: true });
  await expectAccessible(page, 'channel (live)');
});

test('home pages through the live channels, most watched first', async ({ page, request }) => {
  // More live channels than one page (24) holds, one of them watched.
  const crowd = await Promise.all(Array.from({ length: 25 }, () => apiSignup(request, 'crowd_')));
  const streams = await Promise.all(crowd.map((user, i) => goLive(request, user, `Crowd ${i}`, 'Talk')));
  for (let viewer = 0; viewer < 2; viewer++) {
    expect(await anonymousHeartbeat(request, streams[24])).toBe(204);
  }
  await expect
    .poll(async () => (await (await request.get(`/api/streams/${streams[24]}`)).json()).viewer_count)
    .toBe(2);
  try {
    await page.goto('/');
    const cards = page.getByRole('main').getByRole('listitem');
    await expect(cards).toHaveCount(24);
    await page.getByRole('button', { name: 'Show more' }).click();
    await expect.poll(() => cards.count()).toBeGreaterThan(24);
    const counts = (await cards.locator('.card-viewers').allTextContents()).map((text) => parseInt(text, 10));
    expect(counts).toEqual([...counts].sort((a, b) => b - a));
    const titles = await cards.getByRole('link').allTextContents();
    expect(new Set(titles).size, 'each channel once').toBe(titles.length);
    expect(titles.slice(0, 24), 'the watched channel is on the first page').toContain('Crowd 24');
  } finally {
    // Later tests expect a short home page.
    for (const user of crowd) {
      await request.post('/api/streams/end', { headers: { authorization: `Bearer ${user.token}` } });
    }
  }
});

test('the home page loads under 200 KB of JS and CSS as transferred (compressed)', async ({ page }) => {
  const loaded: Response[] = [];
  page.on('response', (response) => {
    if (['script', 'stylesheet'].includes(response.request().resourceType())) loaded.push(response);
  });
  await page.goto('/');
  await expect(page.locator('main h1')).toBeVisible();
  await page.waitForLoadState('networkidle');
  let transferred = 0;
  for (const response of loaded) {
    expect(response.headers()['content-encoding'], response.url()).toMatch(/^(br|gzip)$/);
    const sizes = await response.request().sizes();
    transferred += sizes.responseHeadersSize + sizes.responseBodySize;
  }
  expect(loaded.length).toBeGreaterThanOrEqual(2);
  test.info().annotations.push({ type: 'home JS+CSS transferred', description: `${transferred} bytes` });
  console.log(`home page JS+CSS transferred: ${transferred} bytes in ${loaded.length} files (${loaded.map((r) => r.headers()['content-encoding']).join(", ")})`);
  expect(transferred).toBeLessThan(200 * 1024);
});

test('a channel publishing video shows its live preview on the home page', async ({ page, request }) => {
  const creator = await apiSignup(request, 'preview_');
  const key = await request.get('/api/me/stream-key', { headers: { authorization: `Bearer ${creator.token}` } });
  const { stream_key, rtmp_url } = await key.json();
  const ffmpeg = publishTestPattern(rtmp_url, stream_key);
  try {
    const preview = page.getByRole('img', { name: `Live preview of ${creator.username} is live` });
    // The first preview takes a moment; the list reloads every 15 s, so each attempt
    // checks one rendering of it, start to end.
    await expect(async () => {
      await page.goto('/');
      await expect(preview).toBeVisible({ timeout: 2_000 });
      expect(await preview.evaluate((img: HTMLImageElement) => img.naturalWidth)).toBe(320);
      await expect(preview).toHaveAttribute('loading', 'lazy', { timeout: 0 });
      // The box keeps 16:9 whatever the image: the card does not jump when it arrives.
      const box = (await preview.boundingBox())!;
      expect(Math.abs(box.width / box.height - 16 / 9)).toBeLessThan(0.02);
    }).toPass({ timeout: 30_000 });
    await expectAccessible(page, 'home (with a preview)');
  } finally {
    ffmpeg.kill('SIGKILL');
  }
});

test('a preview that failed to load comes back with the next reload of the list', async ({ page, request }) => {
  const creator = await apiSignup(request, 'missed_');
  const key = await request.get('/api/me/stream-key', { headers: { authorization: `Bearer ${creator.token}` } });
  const { stream_key, rtmp_url } = await key.json();
  const ffmpeg = publishTestPattern(rtmp_url, stream_key);
  try {
    // Wait for the first preview, then let the page's first request for it fail, as it
    // does when a channel has just gone live.
    let previewUrl = '';
    await expect
      .poll(async () => {
        const live = await (await request.get('/api/streams?status=live&sort=viewers&limit=100')).json();
        const stream = live.data.find((s: { owner: { id: string } }) => s.owner.id === creator.id);
        previewUrl = stream?.preview_url ?? '';
        return previewUrl ? (await request.get(previewUrl)).status() : 0;
      }, { timeout: 30_000 })
      .toBe(200);
    let requests = 0;
    await page.route(`**${previewUrl}?*`, (route) => (requests++ === 0 ? route.fulfill({ status: 404 }) : route.continue()));
    await page.clock.install();
    await page.goto('/');
    const card = page.getByRole('listitem').filter({ hasText: `${creator.username} is live` });
    await expect(card).toBeVisible();
    await expect(card.getByRole('img')).toHaveCount(0);
    await page.clock.fastForward('00:15');
    const preview = card.getByRole('img', { name: `Live preview of ${creator.username} is live` });
    await expect(preview).toBeVisible();
    // Visible as soon as the element is in the page; its pixels arrive a moment later.
    await expect.poll(() => preview.evaluate((img: HTMLImageElement) => img.naturalWidth)).toBe(320);
  } finally {
    ffmpeg.kill('SIGKILL');
  }
});

test('an offline channel says so', async ({ page, request }) => {
  const creator = await apiSignup(request, 'off_');
  await page.goto(`/c/${creator.id}`);
  await expect(page.getByRole('status')).toHaveText(`${creator.username} is offline.`);
  await expect(page.getByLabel(/Live video/)).toHaveCount(0);
  await expectAccessible(page, 'channel (offline)');
});

test('an open channel page hears the broadcast start and end from its chat room, without polling', async ({ page, request }) => {
  const creator = await apiSignup(request, 'told_');
  await page.goto(`/c/${creator.id}`);
  await expect(page.getByRole('status')).toHaveText(`${creator.username} is offline.`);
  const polls: string[] = [];
  page.on('request', (r) => {
    if (/\/api\/streams\/[0-9a-f-]{36}$/.test(r.url())) polls.push(r.url());
  });
  // The page polls once a minute as a fallback; the room says it at once.
  await goLive(request, creator, 'Told by the room', 'Talk');
  await expect(page.getByText('Told by the room')).toBeVisible({ timeout: 10_000 });
  const ended = await request.post('/api/streams/end', { headers: { authorization: `Bearer ${creator.token}` }, data: {} });
  expect(ended.status()).toBe(200);
  await expect(page.getByRole('status').filter({ hasText: 'is offline' })).toBeVisible({ timeout: 10_000 });
  expect(polls.length).toBeLessThanOrEqual(2);
});

test('every page passes axe-core, signed out and in', async ({ page }) => {
  // Nine axe-core runs of 1–4 s each on a busy 2-core machine.
  for (const path of ['/', '/login', '/signup', '/dashboard', '/settings', '/c/nobody', '/embed/nobody']) {
    await page.goto(path);
    await expect(page.locator('main h1')).toBeVisible();
    await expectAccessible(page, `${path} (signed out)`);
  }
  await signUpThroughPage(page, uniqueName('axe_'));
  await page.getByRole('link', { name: 'Dashboard' }).click();
  await page.getByRole('button', { name: 'Reveal stream key' }).click();
  await expect(page.getByText(/^live_/)).toBeVisible();
  await expect(page.getByText('rtmp://')).toBeVisible();
  await page.screenshot({ path: `${SCREENSHOTS}dashboard.png`, fullPage: true });
  await expectAccessible(page, '/dashboard (signed in)');
  await page.getByRole('link', { name: 'Settings' }).click();
  await expect(page.getByLabel('Display name')).toBeVisible();
  await expectAccessible(page, '/settings (signed in)');
});

test('controls are reachable by keyboard', async ({ page }) => {
  await page.goto('/login');
  // The page renders once the session is restored (one request).
  await expect(page.getByRole('heading', { level: 1 })).toBeVisible();
  await page.keyboard.press('Tab');
  await expect(page.getByRole('link', { name: 'Skip to content' })).toBeFocused();
  const reached: string[] = [];
  for (let i = 0; i < 8; i += 1) {
    await page.keyboard.press('Tab');
    reached.push(await page.evaluate(() => document.activeElement?.getAttribute('id') || document.activeElement?.textContent || ''));
  }
  expect(reached).toEqual(expect.arrayContaining(['login', 'password', 'Log in']));
});

test.describe('phone width', () => {
  test.use({ viewport: { width: 375, height: 740 }, isMobile: true, hasTouch: true });

  test('home fits 375 px without sideways scrolling', async ({ page, request }) => {
    const creator = await apiSignup(request, 'phone_');
    await goLive(request, creator, 'A rather long stream title that has to wrap on a phone screen', 'IRL');
    await page.goto('/');
    await expect(page.getByText('A rather long stream title')).toBeVisible();
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    expect(width).toBeLessThanOrEqual(375);
    await page.screenshot({ path: `${SCREENSHOTS}home-phone.png`, fullPage: true });
    await expectAccessible(page, 'home (phone)');
  });
});
