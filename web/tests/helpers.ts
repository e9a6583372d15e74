import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import AxeBuilder from '@axe-core/playwright';
import { expect, type APIRequestContext, type Browser, type Locator, type Page } from '@playwright/test';

/** Where the runs leave their screenshots (README: Web UI). */
export const SCREENSHOTS = new URL('../screenshots/', import.meta.url).pathname;
mkdirSync(SCREENSHOTS, { recursive: true });

let counter = 0;
export function uniqueName(prefix: string): string {
  counter += 1;
  return `${prefix}${Date.now().toString(36)}${counter}`.slice(0, 25);
}

export interface ApiUser {
  id: string;
  username: string;
  token: string;
}

/** A user made through the API (for the other side of a page test). */
export async function apiSignup(request: APIRequestContext, prefix: string): Promise<ApiUser> {
  const username = uniqueName(prefix);
  const signup = () =>
    request.post('/api/auth/signup', {
      data: { username, email: `${username}@example.com`, password: 'correct horse battery' },
    });
  let response = await signup();
  // Many signups at once exceed the server's password-hashing slots: it answers 503 with
  // Retry-After, and a client waits and tries again.
  for (let attempt = 0; response.status() === 503 && attempt < 30; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, Number(response.headers()['retry-after'] ?? 1) * 1000));
    response = await signup();
  }
  expect(response.ok(), `signup: ${response.status()}`).toBeTruthy();
  const body = await response.json();
  return { id: body.user_id, username, token: body.access_token };
}

export async function goLive(request: APIRequestContext, user: ApiUser, title: string, category: string) {
  const response = await request.post('/api/streams/start', {
    headers: { authorization: `Bearer ${user.token}` },
    data: { title, category },
  });
  expect(response.status()).toBe(201);
  return (await response.json()).id as string;
}

/** One new anonymous viewer's heartbeat: a viewer token of the stream, then a beat with it. */
export async function anonymousHeartbeat(request: APIRequestContext, streamId: string): Promise<number> {
  const minted = await request.post(`/api/streams/${streamId}/viewer-token`);
  expect(minted.status()).toBe(200);
  const { viewer_token } = await minted.json();
  return (await request.post(`/api/streams/${streamId}/heartbeat`, { data: { viewer_token } })).status();
}

export const bearer = (user: ApiUser) => ({ authorization: `Bearer ${user.token}` });

/** A page's section by its heading. */
export const region = (page: Page, name: string) => page.getByRole('region', { name, exact: true });

/** A client-side navigation: the session lives in the page's memory, a reload would drop it. */
export async function openInApp(page: Page, path: string) {
  await page.evaluate((to) => {
    history.pushState(null, '', to);
    dispatchEvent(new PopStateEvent('popstate'));
  }, path);
}

/** A page in a fresh browser context, logged in through the login page as `user`. */
export async function loggedInPage(browser: Browser, user: ApiUser): Promise<Page> {
  const page = await (await browser.newContext()).newPage();
  await page.goto('/login');
  await page.getByLabel('Username or email').fill(user.username);
  await page.getByLabel('Password').fill('correct horse battery');
  await page.getByRole('button', { name: 'Log in' }).click();
  await expect(page.getByRole('button', { name: 'Log out' })).toBeVisible();
  return page;
}

export function chatLog(page: Page) {
  return page.getByRole('log', { name: 'Chat messages' });
}

/** Signs up through the page and waits until the app shows the signed-in menu. */
export async function signUpThroughPage(page: Page, username: string) {
  await page.goto('/signup');
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Email').fill(`${username}@example.com`);
  await page.getByLabel('Password').fill('correct horse battery');
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page.getByRole('button', { name: 'Log out' })).toBeVisible();
}

/** axe-core on the page as it is: no serious or critical violations. */
export async function expectAccessible(page: Page, what: string) {
  const results = await new AxeBuilder({ page }).analyze();
  const bad = results.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  expect(bad.map((v) => `${what}: ${v.id} (${v.impact}) ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`)).toEqual([]);
}

/** ffmpeg publishing a 640x360 test pattern with a tone to `rtmpUrl`/`key`, in real time. */
export function publishTestPattern(rtmpUrl: string, key: string): ChildProcess {
  return spawn(
    'ffmpeg',
    ['-loglevel', 'error', '-re', '-f', 'lavfi', '-i', 'testsrc=size=640x360:rate=30', '-f', 'lavfi', '-i', 'sine=frequency=440',
      '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-g', '30', '-pix_fmt', 'yuv420p', '-c:a', 'aac',
      '-f', 'flv', `${rtmpUrl}/${key}`],
    { stdio: 'ignore' },
  );
}

/** Starts a video (muted, so the browser lets it) and waits until its clock advances. */
export async function expectPlaying(video: Locator) {
  const clock = () => video.evaluate((v: HTMLVideoElement) => v.currentTime);
  await expect(async () => {
    await video.evaluate((v: HTMLVideoElement) => {
      v.muted = true;
      return v.play().catch(() => {});
    });
    const start = await clock();
    await expect.poll(clock, { timeout: 5_000 }).toBeGreaterThan(start + 0.5);
  }).toPass({ timeout: 30_000 });
}
