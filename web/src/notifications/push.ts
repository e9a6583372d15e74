// Web Push in this browser: the service worker (web/public/sw.js) and its subscription,
// which the server keeps so it can push go-live notifications here.
import { ApiError } from '../api';
import { notifications } from './client';

/** unsupported: no service workers or Push API; blocked: the user denied notifications. */
export type PushState = 'unsupported' | 'blocked' | 'off' | 'on';

/** A reason push cannot be turned on, worded for the user. */
export class PushUnavailable extends Error {}

export function pushSupported(): boolean {
  return 'serviceWorker' in navigator && 'PushManager' in window && 'Notification' in window;
}

/** The site's service worker, registered at the root so it controls every page. */
async function serviceWorker(): Promise<ServiceWorkerRegistration> {
  try {
    await navigator.serviceWorker.register('/sw.js', { scope: '/' });
  } catch (e) {
    throw new PushUnavailable(`The notification service worker could not be installed (${(e as Error).message}).`);
  }
  return navigator.serviceWorker.ready;
}

export async function pushState(): Promise<PushState> {
  if (!pushSupported()) return 'unsupported';
  if (Notification.permission === 'denied') return 'blocked';
  const registration = await serviceWorker();
  return (await registration.pushManager.getSubscription()) ? 'on' : 'off';
}

/** The VAPID key as the bytes `applicationServerKey` takes (it arrives base64url). */
function keyBytes(base64url: string): Uint8Array<ArrayBuffer> {
  const base64 = base64url.replace(/-/g, '+').replace(/_/g, '/');
  const binary = atob(base64.padEnd(base64.length + ((4 - (base64.length % 4)) % 4), '='));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

/** How long the browser's push service may take to hand out a subscription. */
const SUBSCRIBE_TIMEOUT_MS = 15_000;

/** A new subscription from the browser's push service, or a reason worded for the user. */
async function subscribeWithin(registration: ServiceWorkerRegistration, key: Uint8Array<ArrayBuffer>) {
  let timer = 0;
  // A browser that cannot reach its push service may never answer at all.
  const silence = new Promise<never>((_, reject) => {
    timer = window.setTimeout(
      () => reject(new PushUnavailable('Your browser’s push service did not answer, so push notifications cannot be turned on right now. Try again later.')),
      SUBSCRIBE_TIMEOUT_MS,
    );
  });
  try {
    return await Promise.race([registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key }), silence]);
  } catch (e) {
    if (e instanceof PushUnavailable) throw e;
    throw new PushUnavailable(
      `Your browser could not subscribe to push notifications (${(e as Error).message}). Private windows, and browsers that cannot reach their push service, cannot receive them.`,
    );
  } finally {
    clearTimeout(timer);
  }
}

/** Asks for permission, subscribes this browser and hands the subscription to the server. */
export async function turnOnPush(): Promise<void> {
  const permission = await Notification.requestPermission();
  if (permission === 'denied') {
    throw new PushUnavailable(
      'Notifications are blocked for this site. Allow them in your browser’s site settings, then try again.',
    );
  }
  if (permission !== 'granted') {
    throw new PushUnavailable('Push notifications need your permission: choose “Allow” when your browser asks.');
  }
  const registration = await serviceWorker();
  let subscription = await registration.pushManager.getSubscription();
  if (!subscription) {
    const { public_key } = await notifications.vapidPublicKey();
    subscription = await subscribeWithin(registration, keyBytes(public_key));
  }
  try {
    await notifications.subscribe(subscription.toJSON());
  } catch (e) {
    // The server does not know it: a subscription left here would only mislead.
    await subscription.unsubscribe().catch(() => {});
    throw e;
  }
}

/** Removes this browser's subscription, on the server and in the browser. */
export async function turnOffPush(): Promise<void> {
  const registration = await serviceWorker();
  const subscription = await registration.pushManager.getSubscription();
  if (!subscription) return;
  try {
    await notifications.unsubscribe(subscription.endpoint);
  } catch (e) {
    // Already gone on the server (another account, or the push service reported it gone).
    if (!(e instanceof ApiError && e.status === 404)) throw e;
  }
  await subscription.unsubscribe();
}

/**
 * On logout this browser stops receiving the account's pushes (the next person at a shared
 * computer must not see them). Never holds up the logout.
 */
export async function forgetPushOnLogout(): Promise<void> {
  if (!pushSupported()) return;
  const registration = await navigator.serviceWorker.getRegistration('/').catch(() => undefined);
  const subscription = await registration?.pushManager.getSubscription().catch(() => null);
  if (!subscription) return;
  await notifications.unsubscribe(subscription.endpoint).catch(() => {});
  await subscription.unsubscribe().catch(() => {});
}
