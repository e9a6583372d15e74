import { expect, test } from '@playwright/test';
import { apiSignup, expectAccessible, goLive, signUpThroughPage, uniqueName } from './helpers';

test('a follower sees the badge change when the channel goes live, reads it in the menu and marks all read', async ({
  page,
  request,
}) => {
  const creator = await apiSignup(request, 'star_');
  const fan = uniqueName('fan_');
  await signUpThroughPage(page, fan);

  // The follow goes through the API, in a session of the fan's own (the page's token stays
  // in the page's memory).
  const login = await request.post('/api/auth/login', { data: { login: fan, password: 'correct horse battery' } });
  expect(login.ok()).toBeTruthy();
  const auth = { authorization: `Bearer ${(await login.json()).access_token}` };
  const follow = await request.post(`/api/users/${creator.id}/follow`, { headers: auth });
  expect(follow.status()).toBe(204);

  const menuButton = page.getByRole('button', { name: /^Notifications/ });
  await expect(menuButton).toHaveAccessibleName('Notifications');
  await expect(menuButton).toHaveAttribute('aria-expanded', 'false');

  await goLive(request, creator, 'Late night speedrun', 'Games');
  // The live feed (server-sent events) brings it without a reload.
  await expect(menuButton).toHaveAccessibleName('Notifications, 1 unread', { timeout: 15_000 });

  // Keyboard: Enter opens the menu and moves focus into it, Escape closes it and refocuses the button.
  await menuButton.focus();
  await page.keyboard.press('Enter');
  await expect(menuButton).toHaveAttribute('aria-expanded', 'true');
  const panel = page.getByRole('region', { name: 'Notifications' });
  await expect(panel).toBeFocused();
  const item = panel.getByRole('link', { name: new RegExp(`${creator.username} is live`) });
  await expect(item).toHaveAttribute('href', `/c/${creator.username}`);
  await expect(item).toContainText('Late night speedrun');
  await expect(item).toHaveAccessibleName(/unread/);
  await expectAccessible(page, 'notifications menu (open)');
  await page.keyboard.press('Escape');
  await expect(menuButton).toHaveAttribute('aria-expanded', 'false');
  await expect(menuButton).toBeFocused();
  await expect(panel).toBeHidden();

  await menuButton.click();
  await panel.getByRole('button', { name: 'Mark all read' }).click();
  await expect(menuButton).toHaveAccessibleName('Notifications');
  await expect(item).not.toHaveAccessibleName(/unread/);
  const unread = await request.get('/api/me/notifications/unread-count', { headers: auth });
  expect(await unread.json()).toEqual({ unread: 0 });

  // The notification's link opens the channel page.
  await item.click();
  await expect(page).toHaveURL(`/c/${creator.username}`);
  await expect(panel).toBeHidden();
});

test('opening a notification marks it read', async ({ page, request }) => {
  const creator = await apiSignup(request, 'one_');
  const fan = await apiSignup(request, 'reader_');
  await request.post(`/api/users/${creator.id}/follow`, { headers: { authorization: `Bearer ${fan.token}` } });
  await goLive(request, creator, 'Chess puzzles', 'Chess');
  const auth = { authorization: `Bearer ${fan.token}` };
  await expect.poll(async () => (await (await request.get('/api/me/notifications/unread-count', { headers: auth })).json()).unread).toBe(1);

  await page.goto('/login');
  await page.getByLabel('Username or email').fill(fan.username);
  await page.getByLabel('Password').fill('correct horse battery');
  await page.getByRole('button', { name: 'Log in' }).click();
  const menuButton = page.getByRole('button', { name: /^Notifications/ });
  await expect(menuButton).toHaveAccessibleName('Notifications, 1 unread');

  await menuButton.click();
  await page.getByRole('link', { name: new RegExp(creator.username) }).click();
  await expect(page).toHaveURL(`/c/${creator.username}`);
  await expect(menuButton).toHaveAccessibleName('Notifications');
  await expect.poll(async () => (await (await request.get('/api/me/notifications/unread-count', { headers: auth })).json()).unread).toBe(0);
});

test('the live feed carries the token in a header, never in the URL', async ({ page }) => {
  const feeds: string[] = [];
  page.on('request', (r) => {
    if (r.url().includes('/api/me/notifications/live')) feeds.push(r.url());
  });
  const authorized = page.waitForRequest(
    async (r) => r.url().endsWith('/api/me/notifications/live') && (await r.headerValue('authorization'))?.startsWith('Bearer ') === true,
  );
  await signUpThroughPage(page, uniqueName('hdr_'));
  await authorized;
  expect(feeds.every((url) => !url.includes('token'))).toBeTruthy();

  // Signing out ends the feed; no new connection follows while signed out.
  await page.getByRole('button', { name: 'Log out' }).click();
  const before = feeds.length;
  await page.waitForTimeout(2_000);
  expect(feeds.length).toBe(before);
});

test('the menu fits a phone screen', async ({ page }) => {
  await page.setViewportSize({ width: 375, height: 700 });
  await signUpThroughPage(page, uniqueName('phone_'));
  await page.getByRole('button', { name: /^Notifications/ }).click();
  const panel = page.getByRole('region', { name: 'Notifications' });
  await expect(panel.getByText('Nothing yet.', { exact: false })).toBeVisible();
  const box = (await panel.boundingBox())!;
  expect(box.x).toBeGreaterThanOrEqual(0);
  expect(box.x + box.width).toBeLessThanOrEqual(375);
  expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(375);
  await expectAccessible(page, 'notifications menu (phone width)');
});

test('the inbox pages through older notifications', async ({ page, request }) => {
  test.setTimeout(90_000);
  const fan = await apiSignup(request, 'many_');
  const auth = { authorization: `Bearer ${fan.token}` };
  // One more than the menu's page of 20.
  const creators = await Promise.all(Array.from({ length: 21 }, (_, i) => apiSignup(request, `c${i}_`)));
  for (const creator of creators) {
    expect((await request.post(`/api/users/${creator.id}/follow`, { headers: auth })).status()).toBe(204);
  }
  await Promise.all(creators.map((creator, i) => goLive(request, creator, `Stream number ${i}`, 'Games')));
  await expect
    .poll(async () => (await (await request.get('/api/me/notifications/unread-count', { headers: auth })).json()).unread, { timeout: 30_000 })
    .toBe(21);

  await page.goto('/login');
  await page.getByLabel('Username or email').fill(fan.username);
  await page.getByLabel('Password').fill('correct horse battery');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('button', { name: 'Notifications, 21 unread' }).click();
  const panel = page.getByRole('region', { name: 'Notifications' });
  await expect(panel.getByRole('link')).toHaveCount(20);
  await panel.getByRole('button', { name: 'Show older notifications' }).click();
  await expect(panel.getByRole('link')).toHaveCount(21);
  await expect(panel.getByRole('button', { name: 'Show older notifications' })).toHaveCount(0);
});

test('the live feed reconnects when the connection fails or ends', async ({ page, request }) => {
  const creator = await apiSignup(request, 'back_');
  const fan = await apiSignup(request, 'net_');
  const auth = { authorization: `Bearer ${fan.token}` };
  expect((await request.post(`/api/users/${creator.id}/follow`, { headers: auth })).status()).toBe(204);

  // The first connection is refused, the second ends after its first event, the third is real.
  let feeds = 0;
  await page.route('**/api/me/notifications/live', (route) => {
    feeds += 1;
    if (feeds === 1) {
      return route.fulfill({ status: 503, contentType: 'application/json', body: '{"error":{"code":"unavailable","message":"try later"}}' });
    }
    if (feeds === 2) {
      return route.fulfill({ status: 200, contentType: 'text/event-stream', body: ': hello\r\nevent: unread\r\ndata: {"unread":7}\r\n\r\n' });
    }
    return route.continue();
  });
  await page.goto('/login');
  await page.getByLabel('Username or email').fill(fan.username);
  await page.getByLabel('Password').fill('correct horse battery');
  await page.getByRole('button', { name: 'Log in' }).click();
  const menuButton = page.getByRole('button', { name: /^Notifications/ });
  await expect(menuButton).toHaveAccessibleName('Notifications, 7 unread', { timeout: 10_000 });
  // The real feed's count replaces the ended one's.
  await expect(menuButton).toHaveAccessibleName('Notifications', { timeout: 10_000 });
  expect(feeds).toBe(3);
  await goLive(request, creator, 'Back online', 'Talk');
  await expect(menuButton).toHaveAccessibleName('Notifications, 1 unread', { timeout: 15_000 });
});
