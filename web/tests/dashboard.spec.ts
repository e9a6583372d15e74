import { expect, test, type APIRequestContext, type Page } from '@playwright/test';
import { anonymousHeartbeat, apiSignup, bearer, expectAccessible, goLive, region, SCREENSHOTS, signUpThroughPage, uniqueName, type ApiUser } from './helpers';

/** A creator signed up through the page (in-memory session), plus an API token of theirs. */
async function creatorOnDashboard(page: Page, request: APIRequestContext, prefix: string): Promise<ApiUser> {
  const username = uniqueName(prefix);
  await signUpThroughPage(page, username);
  const login = await request.post('/api/auth/login', { data: { login: username, password: 'correct horse battery' } });
  expect(login.ok()).toBeTruthy();
  const body = await login.json();
  await page.getByRole('link', { name: 'Dashboard', exact: true }).click();
  await expect(page.getByRole('heading', { level: 1, name: 'Dashboard' })).toBeVisible();
  return { id: body.user_id, username, token: body.access_token };
}


/** Accepts the next native confirm() (destructive actions ask first). */
const acceptNextDialog = (page: Page) => page.once('dialog', (dialog) => dialog.accept());

test('live status, viewer count, title editing and ending the stream', async ({ page, request }) => {
  const creator = await creatorOnDashboard(page, request, 'dash_');
  const status = region(page, 'Live status');
  await expect(status.getByRole('status')).toHaveText('Not live');
  await expect(region(page, 'Stream info')).toContainText('can only be changed while you are live');
  // The OBS browser-source address of the chat overlay, ready to copy.
  await expect(page.getByLabel('Chat overlay address')).toHaveValue(new RegExp(`/overlay/${creator.id}$`));

  const streamId = await goLive(request, creator, 'First title', 'Chess');
  await expect(status.getByRole('status')).toHaveText('Live', { timeout: 15_000 });
  for (let viewer = 0; viewer < 2; viewer++) {
    expect(await anonymousHeartbeat(request, streamId)).toBe(204);
  }
  await expect(status.getByText('2 viewers')).toBeVisible({ timeout: 15_000 });
  await expect(status.getByText(/under a minute|min/)).toBeVisible();

  // The server's validation error is shown next to the field it is about.
  const info = region(page, 'Stream info');
  await expect(info.getByLabel('Title')).toHaveValue('First title');
  await info.getByLabel('Title').fill('   ');
  await info.getByRole('button', { name: 'Save stream info' }).click();
  await expect(info.getByLabel('Title')).toHaveAccessibleDescription(/must be 1 to 140 characters/);
  await expect(info.getByRole('alert')).toHaveText(/must be 1 to 140 characters/);

  await info.getByLabel('Title').fill('Renamed while live');
  await info.getByLabel('Category (optional)').fill('Speedruns');
  await info.getByRole('button', { name: 'Save stream info' }).click();
  await expect(info.getByRole('status')).toHaveText('Stream info saved.');
  await expect(info.getByRole('alert')).toHaveCount(0);
  const stream = await (await request.get(`/api/streams/${streamId}`)).json();
  expect([stream.title, stream.category]).toEqual(['Renamed while live', 'Speedruns']);

  await expectAccessible(page, '/dashboard (live)');
  await page.screenshot({ path: `${SCREENSHOTS}dashboard-live.png`, fullPage: true });

  await status.getByRole('link', { name: 'Open the channel page' }).click();
  await expect(page.getByRole('heading', { name: 'Renamed while live' })).toBeVisible();
  await page.getByRole('link', { name: 'Dashboard', exact: true }).click();

  acceptNextDialog(page);
  await region(page, 'Live status').getByRole('button', { name: 'End stream' }).click();
  await expect(region(page, 'Live status').getByRole('status')).toHaveText('Not live');
  expect((await (await request.get(`/api/streams/${streamId}`)).json()).status).toBe('ended');
});

test('going live from the dashboard with a title', async ({ page, request }) => {
  const creator = await creatorOnDashboard(page, request, 'golive_');
  const info = region(page, 'Stream info');
  await info.getByLabel('Title').fill('Started with a title');
  await info.getByRole('button', { name: 'Go live' }).click();
  await expect(region(page, 'Live status').getByRole('status')).toHaveText('Live');
  const me = await (await request.get('/api/users/me', { headers: bearer(creator) })).json();
  expect((await (await request.get(`/api/streams/${me.live_stream_id}`)).json()).title).toBe('Started with a title');
  expect((await request.post('/api/streams/end', { headers: bearer(creator) })).ok()).toBeTruthy();
});

/** The moderation log's entries as one text, once `expected` shows up in it. */
async function moderationLog(page: Page, expected: string): Promise<string> {
  const log = region(page, 'Moderation log').getByRole('list', { name: 'Moderation log' });
  await expect(log).toContainText(expected);
  return (await log.textContent())!;
}

test('slow mode and followers-only from the dashboard', async ({ page, request }) => {
  const creator = await creatorOnDashboard(page, request, 'slow_');
  const settings = region(page, 'Chat settings');
  await expect(settings.getByLabel(/Followed for at least/)).toBeDisabled();
  await settings.getByLabel(/Slow mode/).fill('30');
  await settings.getByLabel('Followers-only chat').check();
  await settings.getByLabel(/Followed for at least/).fill('10');
  await settings.getByRole('button', { name: 'Save chat settings' }).click();
  await expect(settings.getByRole('status')).toHaveText('Chat settings saved.');
  const saved = await (await request.get(`/api/channels/${creator.id}/chat/settings`)).json();
  expect(saved).toEqual({ slow_mode_secs: 30, followers_only_minutes: 10 });

  await settings.getByLabel('Followers-only chat').uncheck();
  await settings.getByLabel(/Slow mode/).fill('0');
  await settings.getByRole('button', { name: 'Save chat settings' }).click();
  await expect
    .poll(async () => (await request.get(`/api/channels/${creator.id}/chat/settings`)).json())
    .toEqual({ slow_mode_secs: 0, followers_only_minutes: null });
  expect(await moderationLog(page, 'changed the chat settings')).toContain(`${creator.username} changed the chat settings`);
});

test('moderators added by username, listed and removed', async ({ page, request }) => {
  await creatorOnDashboard(page, request, 'modown_');
  const helper = await apiSignup(request, 'helper_');
  const moderators = region(page, 'Moderators');
  await expect(moderators.getByText('No moderators yet.')).toBeVisible();
  await moderators.getByLabel('Username of the new moderator').fill('nobody_by_that_name');
  await moderators.getByRole('button', { name: 'Add moderator' }).click();
  await expect(moderators.getByRole('alert')).toHaveText('Nobody is called “nobody_by_that_name”.');

  await moderators.getByLabel('Username of the new moderator').fill(helper.username.toUpperCase());
  await moderators.getByRole('button', { name: 'Add moderator' }).click();
  await expect(moderators.getByRole('list', { name: 'Moderators' })).toContainText(helper.username);
  await expect(moderators.getByRole('alert')).toHaveCount(0);
  acceptNextDialog(page);
  await moderators.getByRole('button', { name: `Remove ${helper.username} as moderator` }).click();
  await expect(moderators.getByText('No moderators yet.')).toBeVisible();

  const log = await moderationLog(page, `removed ${helper.username} as a moderator`);
  expect(log).toContain(`added ${helper.username} as a moderator`);
});

test('bans and timeouts by username, listed and lifted', async ({ page, request }) => {
  const creator = await creatorOnDashboard(page, request, 'banown_');
  const troll = await apiSignup(request, 'troll_');
  const bans = region(page, 'Bans and timeouts');
  await expect(bans.getByText('Nobody is banned or timed out.')).toBeVisible();

  await bans.getByLabel('Username').fill(troll.username);
  await bans.getByLabel('Reason (optional, bans only)').fill('spam links');
  acceptNextDialog(page);
  await bans.getByRole('button', { name: 'Ban', exact: true }).click();
  const banList = bans.getByRole('list', { name: 'Bans and timeouts' });
  await expect(banList).toContainText(`${troll.username} banned · spam links`);
  await bans.getByRole('button', { name: `Unban ${troll.username}` }).click();
  await expect(bans.getByText('Nobody is banned or timed out.')).toBeVisible();

  await bans.getByLabel('Username').fill(troll.username);
  await bans.getByLabel('Length').selectOption({ label: 'Time out for 10 minutes' });
  await expect(bans.getByLabel('Reason (optional, bans only)')).toBeDisabled();
  acceptNextDialog(page);
  await bans.getByRole('button', { name: 'Time out' }).click();
  await expect(banList).toContainText(`${troll.username} timed out until`);
  const listed = await (await request.get(`/api/channels/${creator.id}/bans`, { headers: bearer(creator) })).json();
  expect(listed.data.map((b: { user: { id: string } }) => b.user.id)).toEqual([troll.id]);
  await expectAccessible(page, '/dashboard (bans)');
  await region(page, 'Chat moderation').screenshot({ path: `${SCREENSHOTS}dashboard-moderation.png` });
  await bans.getByRole('button', { name: `Lift timeout ${troll.username}` }).click();
  await expect(bans.getByText('Nobody is banned or timed out.')).toBeVisible();

  const log = await moderationLog(page, `timed out ${troll.username}`);
  expect(log).toContain(`banned ${troll.username} (spam links)`);
  expect(log).toContain(`unbanned ${troll.username}`);
});

test('the moderation log pages with "Load more"', async ({ page, request }) => {
  const creator = await creatorOnDashboard(page, request, 'modlog_');
  // 55 entries: more than one page of 50.
  for (let i = 1; i <= 55; i += 1) {
    const put = await request.put(`/api/channels/${creator.id}/chat/settings`, {
      headers: bearer(creator),
      data: { slow_mode_secs: i, followers_only_minutes: null },
    });
    expect(put.status()).toBe(204);
  }
  await page.getByRole('link', { name: 'Settings', exact: true }).click();
  await page.getByRole('link', { name: 'Dashboard', exact: true }).click();
  const log = region(page, 'Moderation log');
  await expect(log.getByRole('listitem')).toHaveCount(50);
  await log.getByRole('button', { name: 'Load more' }).click();
  await expect(log.getByRole('listitem')).toHaveCount(55);
  await expect(log.getByRole('button', { name: 'Load more' })).toHaveCount(0);
});

test('webhooks: created with a secret shown once, listed and deleted', async ({ page, request }) => {
  const creator = await creatorOnDashboard(page, request, 'hooks_');
  const hooks = region(page, 'Webhooks');
  await expect(hooks.getByText('No webhooks yet.')).toBeVisible();

  // Refused by the server: shown next to the URL.
  await hooks.getByLabel('Callback URL (https)').fill('http://hooks.example.com/onair');
  await hooks.getByRole('button', { name: 'Create webhook' }).click();
  await expect(hooks.getByLabel('Callback URL (https)')).toHaveAccessibleDescription(/https/);

  await hooks.getByLabel('Callback URL (https)').fill('https://hooks.example.com/onair');
  await expect(hooks.getByLabel('Stream goes live (stream.online)')).toBeChecked();
  await expect(hooks.getByLabel('Stream ends (stream.offline)')).toBeChecked();
  await hooks.getByRole('button', { name: 'Create webhook' }).click();
  const shown = hooks.getByRole('status');
  await expect(shown).toContainText('will not be shown again');
  const secret = (await shown.locator('code').textContent())!;
  expect(secret).toMatch(/^[0-9a-f]{64}$/);
  const list = hooks.getByRole('list', { name: 'Webhooks' });
  await expect(list.getByRole('listitem')).toHaveCount(2);
  await expect(list).toContainText('https://hooks.example.com/onair');
  await expectAccessible(page, '/dashboard (webhook secret)');

  await hooks.getByRole('button', { name: 'I have copied it' }).click();
  await expect(page.getByText(secret)).toHaveCount(0);
  const listed = await (await request.get('/api/webhooks', { headers: bearer(creator) })).json();
  expect(JSON.stringify(listed)).not.toContain(secret);
  expect(listed.data.map((h: { event: string }) => h.event).sort()).toEqual(['stream.offline', 'stream.online']);

  acceptNextDialog(page);
  await list.getByRole('button', { name: 'Delete the stream.offline webhook to https://hooks.example.com/onair' }).click();
  await expect(list.getByRole('listitem')).toHaveCount(1);
  const left = await (await request.get('/api/webhooks', { headers: bearer(creator) })).json();
  expect(left.data.map((h: { event: string }) => h.event)).toEqual(['stream.online']);
});

test.describe('phone width', () => {
  test.use({ viewport: { width: 375, height: 740 }, isMobile: true, hasTouch: true });

  test('the dashboard fits 375 px without sideways scrolling', async ({ page, request }) => {
    const creator = await creatorOnDashboard(page, request, 'dashphone_');
    await goLive(request, creator, 'A rather long stream title that has to wrap on a phone screen', 'IRL');
    await expect(region(page, 'Live status').getByRole('status')).toHaveText('Live', { timeout: 15_000 });
    await page.getByRole('button', { name: 'Reveal stream key' }).click();
    await expect(page.getByText(/^live_/)).toBeVisible();
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    expect(width).toBeLessThanOrEqual(375);
    await page.screenshot({ path: `${SCREENSHOTS}dashboard-phone.png`, fullPage: true });
    await expectAccessible(page, '/dashboard (phone)');
    expect((await request.post('/api/streams/end', { headers: bearer(creator) })).ok()).toBeTruthy();
  });
});
