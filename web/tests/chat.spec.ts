import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect, test, type APIRequestContext, type Page } from '@playwright/test';
import { apiSignup, chatLog, expectAccessible, expectPlaying, goLive, loggedInPage, openInApp, publishTestPattern, SCREENSHOTS, signUpThroughPage, uniqueName, type ApiUser } from './helpers';

/** Sends chat messages as `user` over a socket of its own (from `page`'s origin), as any client would. */
async function say(page: Page, channelId: string, user: ApiUser, ...texts: string[]) {
  await page.evaluate(
    ({ channelId, token, texts }) =>
      new Promise<void>((resolve, reject) => {
        const ws = new WebSocket(`ws://${location.host}/api/channels/${channelId}/chat`);
        const pending = new Set(texts);
        ws.onopen = () => ws.send(JSON.stringify({ type: 'auth', token }));
        ws.onmessage = (event) => {
          const frame = JSON.parse(event.data);
          if (frame.type === 'authenticated') texts.forEach((text) => ws.send(JSON.stringify({ type: 'message', text })));
          if (frame.type === 'message' && frame.user.id && pending.delete(frame.text) && pending.size === 0) {
            ws.close();
            resolve();
          }
          if (frame.type === 'error') reject(new Error(frame.message));
        };
      }),
    { channelId, token: user.token, texts },
  );
}

async function setChatSettings(request: APIRequestContext, owner: ApiUser, settings: object) {
  const response = await request.put(`/api/channels/${owner.id}/chat/settings`, {
    headers: { authorization: `Bearer ${owner.token}` },
    data: settings,
  });
  expect(response.status()).toBe(204);
}

test('two users chat both ways, history shows on join, and the owner times the viewer out from the message menu', async ({ browser, request }) => {
  test.setTimeout(90_000);
  const creator = await apiSignup(request, 'host_');
  await goLive(request, creator, 'Chatty stream', 'Just Chatting');
  const host = await loggedInPage(browser, creator);
  await openInApp(host, `/c/${creator.username}`);
  await expect(host.getByRole('heading', { name: 'Chat', exact: true })).toBeVisible();

  const viewer = await (await browser.newContext()).newPage();
  const viewerName = uniqueName('fan_');
  await signUpThroughPage(viewer, viewerName);
  await openInApp(viewer, `/c/${creator.username}`);

  await host.getByLabel('Send a message').fill('hello from the host');
  await host.getByLabel('Send a message').press('Enter');
  await expect(chatLog(viewer)).toContainText('hello from the host');
  await expect(host.getByLabel('Send a message')).toHaveValue('');

  // User text is text: markup stays visible characters.
  await viewer.getByLabel('Send a message').fill('<b>hi</b> from the viewer');
  await viewer.getByRole('button', { name: 'Send' }).click();
  await expect(chatLog(host)).toContainText('<b>hi</b> from the viewer');
  await expect(chatLog(host).locator('b')).toHaveCount(0);

  // Moderation: the owner's menu on the viewer's message; none on the owner's own.
  await expect(viewer.getByRole('button', { name: /^Moderate/ })).toHaveCount(0);
  await expect(host.getByRole('button', { name: `Moderate ${creator.username}'s message` })).toHaveCount(0);
  await host.getByRole('button', { name: `Moderate ${viewerName}'s message` }).click();
  await expect(host.getByRole('button', { name: 'Delete message' })).toBeFocused();
  await expectAccessible(host, 'channel with the moderation menu open');
  await host.getByRole('button', { name: 'Time out 60 s' }).click();
  await expect(host.getByText(`${viewerName} is timed out until`)).toBeVisible();

  await expect(viewer.getByRole('alert').filter({ hasText: /You are timed out until \d/ })).toBeVisible();
  await expect(viewer.getByLabel('Send a message')).toBeDisabled();
  await expectAccessible(viewer, 'channel (timed out)');
  // A reload keeps the session (refresh cookie) and the timeout (told on join).
  await viewer.reload();
  await expect(viewer.getByRole('alert').filter({ hasText: /You are timed out until \d/ })).toBeVisible();
  await expect(viewer.getByLabel('Send a message')).toBeDisabled();

  // A signed-out reader joining gets the history, and is asked to log in to talk.
  const reader = await (await browser.newContext()).newPage();
  await reader.goto(`/c/${creator.username}`);
  await expect(chatLog(reader)).toContainText('hello from the host');
  await expect(chatLog(reader)).toContainText('<b>hi</b> from the viewer');
  await expect(reader.getByRole('link', { name: 'Log in to chat' })).toBeVisible();
  await expect(reader.getByLabel('Send a message')).toHaveCount(0);
  await expectAccessible(reader, 'channel with chat (signed out)');

  // After a reload the history is back.
  await viewer.reload();
  await expect(chatLog(viewer)).toContainText('hello from the host');
  await expect(chatLog(viewer)).toContainText('<b>hi</b> from the viewer');
});

test('a moderator deletes a message from its menu and it disappears for everyone', async ({ browser, request }) => {
  const creator = await apiSignup(request, 'boss_');
  await goLive(request, creator, 'Moderated stream', 'Talk');
  const mod = await apiSignup(request, 'mod_');
  const appointed = await request.put(`/api/channels/${creator.id}/moderators/${mod.id}`, {
    headers: { authorization: `Bearer ${creator.token}` },
  });
  expect(appointed.status()).toBe(204);
  const troll = await apiSignup(request, 'troll_');

  const moderator = await loggedInPage(browser, mod);
  await openInApp(moderator, `/c/${creator.username}`);
  const reader = await (await browser.newContext()).newPage();
  await reader.goto(`/c/${creator.username}`);
  await say(reader, creator.id, troll, 'spam spam spam');
  await say(reader, creator.id, creator, 'welcome, everyone');
  await expect(chatLog(reader)).toContainText('spam spam spam');
  await expect(chatLog(moderator)).toContainText('welcome, everyone');

  // Moderators cannot act on the owner: no menu there; anonymous readers get none at all.
  await expect(moderator.getByRole('button', { name: `Moderate ${creator.username}'s message` })).toHaveCount(0);
  await expect(reader.getByRole('button', { name: /^Moderate/ })).toHaveCount(0);
  await moderator.getByRole('button', { name: `Moderate ${troll.username}'s message` }).click();
  await moderator.keyboard.press('Escape');
  await expect(moderator.getByRole('button', { name: 'Delete message' })).toHaveCount(0);
  await expect(moderator.getByRole('button', { name: `Moderate ${troll.username}'s message` })).toBeFocused();
  await moderator.keyboard.press('Enter');
  await moderator.getByRole('button', { name: 'Delete message' }).click();
  await expect(chatLog(reader)).not.toContainText('spam spam spam');
  await expect(chatLog(moderator)).not.toContainText('spam spam spam');
  await expect(chatLog(reader)).toContainText('welcome, everyone');
});

test('slow mode shows on the panel and a refused message counts down and comes back to the field', async ({ browser, request }) => {
  const creator = await apiSignup(request, 'slow_');
  await goLive(request, creator, 'Slow chat', 'Talk');
  const viewer = await (await browser.newContext()).newPage();
  await signUpThroughPage(viewer, uniqueName('patient_'));
  await openInApp(viewer, `/c/${creator.username}`);
  await expect(viewer.getByLabel('Send a message')).toBeEnabled();

  // Set while the page is open: the `settings` frame updates the panel.
  await setChatSettings(request, creator, { slow_mode_secs: 30, followers_only_minutes: null });
  await expect(viewer.getByText('Slow mode: one message every 30 s')).toBeVisible();

  const input = viewer.getByLabel('Send a message');
  await input.fill('first');
  await input.press('Enter');
  await expect(chatLog(viewer)).toContainText('first');
  await input.fill('second');
  await input.press('Enter');
  const notice = viewer.getByRole('alert').filter({ hasText: 'Slow mode is on' });
  await expect(notice).toHaveText(/you can send again in \d+ s\./);
  await expect(input).toHaveValue('second');
  const seconds = async () => Number((await notice.textContent())!.match(/(\d+) s/)![1]);
  const start = await seconds();
  expect(start).toBeGreaterThan(25);
  expect(start).toBeLessThanOrEqual(30);
  await expect.poll(seconds, { timeout: 5_000 }).toBeLessThan(start);
  await expect(chatLog(viewer)).not.toContainText('second');
  await expectAccessible(viewer, 'channel (slow mode)');
});

test('followers-only refuses a newcomer, and a banned user is told and cannot send', async ({ browser, request }) => {
  const creator = await apiSignup(request, 'strict_');
  await goLive(request, creator, 'Strict chat', 'Talk');
  const newcomer = await apiSignup(request, 'newbie_');
  const page = await loggedInPage(browser, newcomer);
  await openInApp(page, `/c/${creator.username}`);
  const input = page.getByLabel('Send a message');
  await expect(input).toBeEnabled();

  await setChatSettings(request, creator, { slow_mode_secs: 0, followers_only_minutes: 10 });
  await expect(page.getByText('Followers-only: followed for 10 min')).toBeVisible();
  await input.fill('can I talk?');
  await input.press('Enter');
  await expect(page.getByRole('alert').filter({ hasText: 'Followers-only chat' })).toBeVisible();
  await expect(input).toHaveValue('can I talk?');

  const ban = await request.post(`/api/channels/${creator.id}/bans`, {
    headers: { authorization: `Bearer ${creator.token}` },
    data: { user_id: newcomer.id },
  });
  expect(ban.status()).toBe(204);
  await expect(page.getByRole('alert').filter({ hasText: 'You are banned from this chat.' })).toBeVisible();
  await expect(input).toBeDisabled();
  // Still reading: the panel reconnects anonymously after the server closed the banned socket.
  await say(page, creator.id, creator, 'rules are rules');
  await expect(chatLog(page)).toContainText('rules are rules');
});

test('the message list follows new messages, unless the reader scrolled up to read', async ({ page, request }) => {
  const creator = await apiSignup(request, 'busy_');
  await goLive(request, creator, 'Busy chat', 'Talk');
  await page.goto(`/c/${creator.id}`);
  await expect(chatLog(page)).toBeVisible();
  // Five messages each (the burst a user may send), from four users: more than the panel shows.
  for (let user = 0; user < 4; user += 1) {
    const talker = await apiSignup(request, 'talker_');
    await say(page, creator.id, talker, ...[1, 2, 3, 4, 5].map((n) => `message ${user * 5 + n} with enough words to wrap onto a second line`));
  }
  await expect(chatLog(page)).toContainText('message 20 ');
  const gap = () => chatLog(page).evaluate((e) => e.scrollHeight - e.scrollTop - e.clientHeight);
  await expect.poll(gap).toBeLessThan(5);

  await chatLog(page).evaluate((e) => e.scrollTo({ top: 0 }));
  await expect(page.getByRole('button', { name: 'Jump to the latest messages' })).toBeVisible();
  await say(page, creator.id, creator, 'a new message while reading');
  await expect(chatLog(page)).toContainText('a new message while reading');
  expect(await chatLog(page).evaluate((e) => e.scrollTop)).toBe(0);

  await page.getByRole('button', { name: 'Jump to the latest messages' }).click();
  await expect.poll(gap).toBeLessThan(5);
  await expect(page.getByRole('button', { name: 'Jump to the latest messages' })).toHaveCount(0);
});

test('the socket logs in with its first frame, not the URL, and reconnects when the server goes away', async ({ browser, request }) => {
  const creator = await apiSignup(request, 'again_');
  await goLive(request, creator, 'Reconnecting stream', 'Talk');
  const page = await loggedInPage(browser, creator);
  const urls: string[] = [];
  const firstFrames: string[] = [];
  const goAway: (() => void)[] = [];
  // Between the page and the server: records each socket, and can close one as a restarting server does.
  await page.routeWebSocket(/\/api\/channels\/[^/]+\/chat/, (ws) => {
    urls.push(ws.url());
    const server = ws.connectToServer();
    let first = true;
    ws.onMessage((message) => {
      if (first) firstFrames.push(String(message));
      first = false;
      server.send(message);
    });
    goAway.push(() => {
      ws.close({ code: 1001, reason: 'server shutting down: reconnect' });
      server.close();
    });
  });
  await openInApp(page, `/c/${creator.username}`);
  const input = page.getByLabel('Send a message');
  await expect(input).toBeEnabled();

  goAway[0]();
  await expect(page.getByText('Chat disconnected; reconnecting…')).toBeVisible();
  await expect(input).toBeEnabled({ timeout: 10_000 });
  await input.fill('still here');
  await input.press('Enter');
  await expect(chatLog(page)).toContainText('still here');
  expect(urls.length).toBe(2);
  expect(urls.every((url) => !url.includes('token'))).toBeTruthy();
  expect(firstFrames.map((f) => JSON.parse(f).type)).toEqual(['auth', 'auth']);
});

test('the pop-out link opens the chat alone in a window of its own', async ({ browser, request }) => {
  const creator = await apiSignup(request, 'pop_');
  await goLive(request, creator, 'Pop-out stream', 'Talk');
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`/c/${creator.username}`);
  await say(page, creator.id, creator, 'visible in the pop-out');

  const [popout] = await Promise.all([context.waitForEvent('page'), page.getByRole('link', { name: 'Pop out chat' }).click()]);
  await popout.waitForLoadState();
  expect(new URL(popout.url()).pathname).toBe(`/popout/${creator.username}`);
  await expect(chatLog(popout)).toContainText('visible in the pop-out');
  await expect(popout.getByRole('link', { name: 'Log in to chat' })).toBeVisible();
  // No site header, no player: the chat alone.
  await expect(popout.getByRole('navigation')).toHaveCount(0);
  await expect(popout.getByLabel(/Live video/)).toHaveCount(0);
  await expect(page.getByLabel(/Live video/)).toBeVisible();
  await expectAccessible(popout, 'pop-out chat');
});

test('the overlay shows recent messages on a transparent page without controls', async ({ page, request }) => {
  const creator = await apiSignup(request, 'obs_');
  await goLive(request, creator, 'Overlay stream', 'Talk');
  await page.goto(`/overlay/${creator.id}`);
  await expect(page.getByRole('log', { name: 'Chat messages' })).toBeAttached();
  await say(page, creator.id, creator, 'Welcome to the stream!', 'GG everyone');
  await expect(chatLog(page)).toContainText('Welcome to the stream!');
  await expect(chatLog(page)).toContainText('GG everyone');

  const backgrounds = await page.evaluate(() => [document.documentElement, document.body].map((e) => getComputedStyle(e).backgroundColor));
  expect(backgrounds).toEqual(['rgba(0, 0, 0, 0)', 'rgba(0, 0, 0, 0)']);
  await expect(page.getByRole('button')).toHaveCount(0);
  await expect(page.getByRole('textbox')).toHaveCount(0);
  await expect(page.getByRole('link')).toHaveCount(0);
  await page.screenshot({ path: `${SCREENSHOTS}overlay.png`, omitBackground: true });
  await expectAccessible(page, 'chat overlay');
});

test('another site may frame the embed page but not the channel page', async ({ page, request, baseURL }) => {
  const creator = await apiSignup(request, 'embed_');
  await goLive(request, creator, 'Embedded stream', 'Talk');
  const embed = await request.get(`/embed/${creator.username}`);
  expect(embed.headers()['content-security-policy']).toContain('frame-ancestors *');
  expect(embed.headers()['x-frame-options']).toBeUndefined();
  const channel = await request.get(`/c/${creator.username}`);
  expect(channel.headers()['content-security-policy']).toContain("frame-ancestors 'none'");
  expect(channel.headers()['x-frame-options']).toBe('DENY');

  // A page on another origin (another port) frames both.
  const site = createServer((_, response) => {
    response.setHeader('content-type', 'text/html');
    response.end(`<!doctype html><html lang="en"><title>Fan site</title>
      <iframe title="Embedded player" src="${baseURL}/embed/${creator.username}" width="640" height="420"></iframe>
      <iframe title="Channel page" src="${baseURL}/c/${creator.username}" width="640" height="420"></iframe></html>`);
  });
  await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve));
  try {
    await page.goto(`http://127.0.0.1:${(site.address() as AddressInfo).port}/`);
    const player = page.getByTitle('Embedded player').contentFrame();
    await expect(player.getByLabel(/Live video/)).toBeVisible();
    await expect(player.getByRole('link', { name: 'Watch on OnAir' })).toHaveAttribute('href', `/c/${creator.username}`);
    await expect(player.getByRole('log')).toHaveCount(0);
    await expect(player.getByRole('textbox')).toHaveCount(0);
    await expect(player.getByRole('navigation')).toHaveCount(0);
    // The browser refused to show the channel page in a frame: the frame holds Chromium's error page.
    const channelFrame = await (await page.getByTitle('Channel page').elementHandle())!.contentFrame();
    await expect.poll(() => channelFrame!.url()).toMatch(/^chrome-error:/);
    await expect(page.getByTitle('Channel page').contentFrame().getByRole('heading', { name: creator.username })).toHaveCount(0);
  } finally {
    site.close();
  }

  await page.goto(`/embed/${creator.username}`);
  await expect(page.getByLabel(/Live video/)).toBeVisible();
  await expectAccessible(page, 'embed (live)');
});

test('the channel page shows the channel’s past broadcasts (none yet)', async ({ page, request }) => {
  const creator = await apiSignup(request, 'vod_');
  await page.goto(`/c/${creator.id}`);
  await expect(page.getByRole('heading', { name: 'Past broadcasts' })).toBeVisible();
  await expect(page.getByText('No past broadcasts yet.')).toBeVisible();
  await expect(page.getByRole('button', { name: 'Load more' })).toHaveCount(0);
});

test('screenshot: a channel page playing a broadcast with its chat', async ({ browser, request }) => {
  test.setTimeout(90_000);
  const creator = await apiSignup(request, 'studio_');
  const key = await (await request.get('/api/me/stream-key', { headers: { authorization: `Bearer ${creator.token}` } })).json();
  const ffmpeg = publishTestPattern(key.rtmp_url, key.stream_key);
  try {
    const guest = await apiSignup(request, 'guest_');
    const as = (user: ApiUser) => ({ authorization: `Bearer ${user.token}` });
    await request.patch('/api/users/me', { headers: as(creator), data: { display_name: 'Studio Nova' } });
    await request.patch('/api/users/me', { headers: as(guest), data: { display_name: 'Robin' } });
    const liveStream = async () => (await (await request.get(`/api/users/${creator.id}`)).json()).live_stream_id;
    await expect.poll(liveStream, { timeout: 30_000 }).toBeTruthy();
    const titled = await request.patch(`/api/streams/${await liveStream()}`, {
      headers: as(creator),
      data: { title: 'Colour bars and a 440 Hz tone', category: 'Science & Technology' },
    });
    expect(titled.ok()).toBeTruthy();

    const page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
    await page.goto(`/c/${creator.id}`);
    await expectPlaying(page.getByLabel(/Live video/));
    await say(page, creator.id, creator, 'Welcome in! Today: a test pattern, live.');
    await say(page, creator.id, guest, 'Those colours look great', 'Is that 440 Hz I hear?');
    await say(page, creator.id, creator, 'It is. Tuning fork stream, all night long.');
    // The page reads the count every 10 s; this viewer's heartbeat shows up in it.
    await expect(page.getByText(/^1 viewer$/)).toBeVisible({ timeout: 15_000 });
    await expect(chatLog(page)).toContainText('all night long');
    await page.screenshot({ path: `${SCREENSHOTS}channel-chat.png` });

    // The anonymous player keeps its viewer token per tab and replaces one the server refuses.
    const kept = `onair:viewer-token:${await liveStream()}`;
    expect(await page.evaluate((k) => sessionStorage.getItem(k), kept)).toContain('"token"');
    await page.evaluate((k) => sessionStorage.setItem(k, JSON.stringify({ token: 'forged', until: Date.now() + 3_600_000 })), kept);
    const refused = page.waitForResponse((r) => r.url().endsWith('/heartbeat') && r.status() === 422);
    const renewed = page.waitForResponse((r) => r.url().endsWith('/viewer-token') && r.status() === 200);
    await page.reload();
    await Promise.all([refused, renewed]);
    await expect.poll(() => page.evaluate((k) => sessionStorage.getItem(k), kept)).not.toContain('forged');
  } finally {
    ffmpeg.kill('SIGKILL');
  }
});

test.describe('phone width', () => {
  test.use({ viewport: { width: 375, height: 740 }, isMobile: true, hasTouch: true });

  test('the channel page with its chat fits 375 px without sideways scrolling', async ({ page, request }) => {
    // A long name: the heading must wrap.
    const creator = await apiSignup(request, 'pocketlongname_');
    await goLive(request, creator, 'Phone chat: a long stream title that must wrap on a narrow screen', 'IRL');
    await page.goto(`/c/${creator.username}`);
    await say(page, creator.id, creator, `${'a'.repeat(200)} and a link-like https://example.com/${'x'.repeat(120)}`);
    await expect(chatLog(page)).toContainText('https://example.com/');
    await expect(page.getByRole('link', { name: 'Log in to chat' })).toBeVisible();
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    expect(width).toBeLessThanOrEqual(375);
    await page.screenshot({ path: `${SCREENSHOTS}channel-chat-phone.png`, fullPage: true });
    await expectAccessible(page, 'channel with chat (phone)');
  });
});
