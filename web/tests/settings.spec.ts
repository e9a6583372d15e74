import { execFileSync } from 'node:child_process';
import { createECDH, randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test, type Page } from '@playwright/test';
import { apiSignup, expectAccessible, signUpThroughPage, uniqueName } from './helpers';

/** A small PNG test pattern, made by ffmpeg. */
function png(): Buffer {
  return execFileSync('ffmpeg', [
    '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc=size=64x48:rate=1', '-frames:v', '1',
    '-f', 'image2pipe', '-c:v', 'png', '-',
  ]);
}

async function openSettings(page: Page) {
  await page.getByRole('link', { name: 'Settings' }).click();
  await expect(page.getByRole('heading', { level: 1, name: 'Settings' })).toBeVisible();
}

test('avatar: upload shows the new image, bad files are refused with a message, remove clears it', async ({ page }) => {
  await signUpThroughPage(page, uniqueName('face_'));
  await openSettings(page);
  const avatar = page.getByRole('region', { name: 'Avatar' });
  const file = avatar.getByLabel('New avatar image');
  await expect(avatar.getByText('You have no avatar yet.')).toBeVisible();

  // Refused before upload: the wrong kind of file, and one over 2 MB.
  await file.setInputFiles({ name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('hello') });
  await expect(avatar.getByRole('alert')).toHaveText('Choose a PNG, JPEG or WebP image.');
  await file.setInputFiles({ name: 'huge.png', mimeType: 'image/png', buffer: Buffer.alloc(2 * 1024 * 1024 + 1) });
  await expect(avatar.getByRole('alert')).toContainText('larger than 2 MB');
  await expect(avatar.getByRole('button', { name: 'Upload avatar' })).toBeDisabled();
  // Refused by the server: claims to be a PNG but is not an image.
  await file.setInputFiles({ name: 'fake.png', mimeType: 'image/png', buffer: Buffer.from('not really a png') });
  await avatar.getByRole('button', { name: 'Upload avatar' }).click();
  await expect(avatar.getByRole('alert')).toBeVisible();
  await expect(avatar.getByRole('img', { name: 'Your avatar' })).toHaveCount(0);

  await file.setInputFiles({ name: 'me.png', mimeType: 'image/png', buffer: png() });
  await expect(avatar.getByRole('img', { name: 'Preview of the new avatar' })).toBeVisible();
  await expectAccessible(page, 'settings (avatar preview)');
  await avatar.getByRole('button', { name: 'Upload avatar' }).click();
  await expect(avatar.getByRole('status')).toHaveText('Avatar updated.');
  const image = avatar.getByRole('img', { name: 'Your avatar' });
  await expect(image).toHaveAttribute('src', /^\/media\/avatars\//);
  // Served, and re-encoded to 256×256 by the server.
  await expect.poll(() => image.evaluate((img: HTMLImageElement) => `${img.naturalWidth}x${img.naturalHeight}`)).toBe('256x256');
  await expect(avatar.getByRole('img', { name: 'Preview of the new avatar' })).toHaveCount(0);

  await avatar.getByRole('button', { name: 'Remove avatar' }).click();
  await expect(avatar.getByRole('status')).toHaveText('Avatar removed.');
  await expect(image).toHaveCount(0);
  await expect(avatar.getByText('You have no avatar yet.')).toBeVisible();
});

test('notification preferences are saved and shown after navigating away and back', async ({ page }) => {
  await signUpThroughPage(page, uniqueName('prefs_'));
  await openSettings(page);
  const section = page.getByRole('region', { name: 'Notifications' });
  const push = section.getByLabel('Also send them to my browsers as push notifications');
  await expect(push).toBeChecked();
  await push.uncheck();
  await section.getByRole('button', { name: 'Save notification settings' }).click();
  await expect(section.getByRole('status')).toHaveText('Notification settings saved.');
  await expectAccessible(page, 'settings');

  await page.getByRole('link', { name: 'OnAir' }).click();
  await expect(page).toHaveURL('/');
  await openSettings(page);
  await expect(push).not.toBeChecked();
  await push.check();
  await section.getByRole('button', { name: 'Save notification settings' }).click();
  await expect(section.getByRole('status')).toHaveText('Notification settings saved.');
  await page.getByRole('link', { name: 'OnAir' }).click();
  await openSettings(page);
  await expect(push).toBeChecked();
});

test('push: the service worker registers at /sw.js and the subscribe flow ends in a clear answer', async ({ page, context, baseURL }) => {
  await context.grantPermissions(['notifications'], { origin: baseURL });
  await signUpThroughPage(page, uniqueName('push_'));
  await openSettings(page);
  const section = page.getByRole('region', { name: 'Notifications' });
  await expect(section.getByText('Push notifications are off in this browser.')).toBeVisible();

  const worker = await page.evaluate(async () => {
    const ready = await navigator.serviceWorker.ready;
    return { scope: ready.scope, script: ready.active?.scriptURL };
  });
  expect(worker).toEqual({ scope: `${baseURL}/`, script: `${baseURL}/sw.js` });

  // Playwright's contexts are private (off-the-record) profiles, where Chromium refuses push
  // subscriptions: the page must say so, not pretend (a regular profile is tried below).
  await section.getByRole('button', { name: 'Turn on push in this browser' }).click();
  const on = section.getByRole('status');
  const unavailable = section.getByRole('alert');
  await expect(on.or(unavailable)).toBeVisible({ timeout: 20_000 });
  if (await unavailable.isVisible()) {
    await expect(unavailable).toContainText('Your browser could not subscribe to push notifications');
    await expect(section.getByText('Push notifications are off in this browser.')).toBeVisible();
    test.info().annotations.push({ type: 'push', description: `private profile: ${await unavailable.textContent()}` });
  } else {
    await expect(on).toHaveText('Push notifications turned on in this browser.');
    await expect(section.getByText('Push notifications are on in this browser.')).toBeVisible();
    await section.getByRole('button', { name: 'Turn off push in this browser' }).click();
    await expect(section.getByText('Push notifications are off in this browser.')).toBeVisible();
    test.info().annotations.push({ type: 'push', description: 'subscribe reached a push service' });
  }
  await expectAccessible(page, 'settings (push answer)');
});

test('push: in a regular profile, a push service that cannot be reached is reported', async ({ playwright, baseURL }) => {
  // A persistent (non-private) profile really asks its push service; offline, it never answers.
  const context = await playwright.chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'onair-profile-')), {
    ...test.info().project.use.launchOptions,
    baseURL,
  });
  try {
    await context.grantPermissions(['notifications'], { origin: baseURL });
    const page = context.pages()[0] ?? (await context.newPage());
    await signUpThroughPage(page, uniqueName('prof_'));
    await openSettings(page);
    const section = page.getByRole('region', { name: 'Notifications' });
    await section.getByRole('button', { name: 'Turn on push in this browser' }).click();
    const on = section.getByRole('status');
    const unavailable = section.getByRole('alert');
    await expect(on.or(unavailable)).toBeVisible({ timeout: 25_000 });
    if (await unavailable.isVisible()) {
      await expect(unavailable).toContainText(/push service did not answer|could not subscribe/);
      test.info().annotations.push({ type: 'push', description: `regular profile: ${await unavailable.textContent()}` });
    } else {
      // With a reachable push service the whole flow runs: the server keeps the subscription.
      await expect(on).toHaveText('Push notifications turned on in this browser.');
      test.info().annotations.push({ type: 'push', description: 'regular profile: subscribed through a real push service' });
    }
  } finally {
    await context.close();
  }
});

test('push: a denied permission is explained', async ({ page }) => {
  // Without a grant, headless Chromium answers the permission request itself.
  await signUpThroughPage(page, uniqueName('deny_'));
  await openSettings(page);
  const section = page.getByRole('region', { name: 'Notifications' });
  await section.getByRole('button', { name: 'Turn on push in this browser' }).click();
  await expect(section.getByRole('alert')).toContainText(/blocked|permission/);
});

test('push: the server takes the subscription the page sends and forgets it on unsubscribe', async ({ request }) => {
  const user = await apiSignup(request, 'sub_');
  const headers = { authorization: `Bearer ${user.token}` };
  const key = await request.get('/api/push/vapid-public-key');
  expect(Buffer.from((await key.json()).public_key, 'base64url')).toHaveLength(65);

  // PushSubscription.toJSON() as a browser makes it.
  const endpoint = `https://push.example.com/send/${randomBytes(8).toString('hex')}`;
  const subscription = {
    endpoint,
    expirationTime: null,
    keys: { p256dh: createECDH('prime256v1').generateKeys().toString('base64url'), auth: randomBytes(16).toString('base64url') },
  };
  const created = await request.post('/api/me/push-subscriptions', { headers, data: subscription });
  expect(created.status()).toBe(201);
  expect(await created.json()).toMatchObject({ endpoint });

  const bad = await request.post('/api/me/push-subscriptions', { headers, data: { ...subscription, keys: { p256dh: 'AAAA', auth: 'short' } } });
  expect(bad.status()).toBe(422);
  const anonymous = await request.post('/api/me/push-subscriptions', { data: subscription });
  expect(anonymous.status()).toBe(401);

  expect((await request.delete('/api/me/push-subscriptions', { headers, data: { endpoint } })).status()).toBe(204);
  expect((await request.delete('/api/me/push-subscriptions', { headers, data: { endpoint } })).status()).toBe(404);
});

test('push: the service worker shows a pushed go-live notification', async ({ page, context, baseURL }) => {
  await context.grantPermissions(['notifications'], { origin: baseURL });
  await signUpThroughPage(page, uniqueName('sw_'));
  await openSettings(page);
  await page.evaluate(() => navigator.serviceWorker.ready);

  const cdp = await context.newCDPSession(page);
  const registration = new Promise<string>((resolve) => {
    cdp.on('ServiceWorker.workerRegistrationUpdated', ({ registrations }) => {
      const ours = registrations.find((r) => r.scopeURL === `${baseURL}/` && !r.isDeleted);
      if (ours) resolve(ours.registrationId);
    });
  });
  await cdp.send('ServiceWorker.enable');
  const registrationId = await registration;
  const shown = () =>
    page.evaluate(async () =>
      (await (await navigator.serviceWorker.ready).getNotifications()).map((n) => ({ title: n.title, body: n.body, tag: n.tag, data: n.data })),
    );
  // Delivered again if it has not shown within 5 s (Chromium can drop a push that arrives
  // while it starts the worker on a busy machine); the tag makes a repeat replace it.
  await expect(async () => {
    await cdp.send('ServiceWorker.deliverPushMessage', {
      origin: baseURL!,
      registrationId,
      // The payload the server sends (crates/onair-server/src/notifications/push.rs).
      data: JSON.stringify({
        title: 'Ada is live',
        body: 'Late night speedrun',
        url: '/c/ada',
        tag: 'live-0190a0b0-0000-7000-8000-000000000002',
        stream_id: '0190a0b0-0000-7000-8000-000000000002',
        creator_id: '0190a0b0-0000-7000-8000-000000000001',
      }),
    });
    await expect.poll(shown, { timeout: 5_000 }).toEqual([
      { title: 'Ada is live', body: 'Late night speedrun', tag: 'live-0190a0b0-0000-7000-8000-000000000002', data: { url: '/c/ada' } },
    ]);
  }).toPass({ timeout: 30_000 });
});
