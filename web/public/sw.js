// OnAir's service worker: shows the go-live pushes the server sends
// (crates/onair-server/src/notifications/push.rs) and opens the channel when one is
// clicked. Served from the site root, so its scope is the whole site.

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

/** The push's JSON ({title, body, url, tag, stream_id, creator_id}); plain text as the body. */
function message(data) {
  if (!data) return {};
  try {
    return data.json();
  } catch {
    return { body: data.text() };
  }
}

/** The channel page of the creator who went live (the payload's url, from this server). */
function channelUrl(push) {
  if (typeof push.url === 'string' && push.url.startsWith('/c/')) return push.url;
  if (typeof push.creator_id === 'string') return `/c/${encodeURIComponent(push.creator_id)}`;
  return '/';
}

self.addEventListener('push', (event) => {
  const push = message(event.data);
  event.waitUntil(
    self.registration.showNotification(push.title || 'OnAir', {
      body: push.body || '',
      tag: push.tag,
      data: { url: channelUrl(push) },
    }),
  );
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const url = new URL(event.notification.data?.url ?? '/', self.location.origin).href;
  event.waitUntil(
    (async () => {
      // Reuse an open OnAir tab when there is one.
      const tabs = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
      const tab = tabs.find((client) => new URL(client.url).origin === self.location.origin);
      if (tab) {
        try {
          await tab.focus();
          return await tab.navigate(url);
        } catch {
          // A tab this worker does not control cannot be navigated: open a new one.
        }
      }
      return self.clients.openWindow(url);
    })(),
  );
});
