// The API client. The access token lives only in this module's memory and the refresh
// token in an httpOnly cookie the server sets (`x-onair-client: web`): neither is in
// localStorage, sessionStorage or a cookie scripts can read, so a third-party script
// cannot lift them. On start, restoreSession() trades the cookie for an access token, so
// a reload keeps the user signed in.

export interface UserSummary {
  id: string;
  username: string;
  display_name: string | null;
  avatar_url: string | null;
}

export interface Profile extends UserSummary {
  bio: string;
  follower_count: number;
  following_count: number;
  is_live: boolean;
  live_stream_id: string | null;
  followed_by_you?: boolean;
}

export interface Stream {
  id: string;
  title: string;
  category: string | null;
  status: 'live' | 'offline' | 'ended';
  started_at: string;
  viewer_count: number;
  /** A still of the broadcast, refreshed every ~10 s; null unless live with video. */
  preview_url: string | null;
  /** Recorded for its archive (and so clippable while live). */
  recording: boolean;
  owner: UserSummary;
}

export type Visibility = 'public' | 'unlisted' | 'private';

/** A past broadcast: playable as streamed at once, then as the processed replay. */
export interface Archive {
  id: string;
  stream_id: string;
  title: string;
  category: string | null;
  status: 'processing' | 'ready' | 'failed';
  /** Processing progress, 0–1. */
  progress: number;
  playlist_url: string | null;
  thumbnail_url: string | null;
  /** Exact once ready; null while processing. */
  duration_secs: number | null;
  visibility: Visibility;
  /** Why processing failed; shown to the owner only. */
  failure_reason?: string | null;
  created_at: string;
  creator: UserSummary;
}

/** A short cut of a broadcast: an HLS (VOD) playlist once ready. */
export interface Clip {
  id: string;
  title: string;
  status: 'processing' | 'ready' | 'failed';
  stream_id: string;
  archive_id: string | null;
  start_secs: number;
  /** Asked for while processing, exact once ready. */
  duration_secs: number;
  playlist_url: string | null;
  thumbnail_url: string | null;
  failure_reason?: string | null;
  clipper_id: string;
  channel: UserSummary;
  created_at: string;
}

/** What to clip: a range of an archive, or the last seconds of a live broadcast. */
export type ClipRequest =
  | { archive_id: string; start_secs: number; duration_secs: number; title?: string }
  | { stream_id: string; duration_secs: number };

export interface StreamKey {
  stream_key: string;
  rtmp_url: string;
  srt_url: string | null;
}

export interface Page<T> {
  data: T[];
  pagination: { next_cursor: string | null; has_more: boolean };
}

/** A page of a list: the first one without a cursor. */
export type PageFetch<T> = (cursor: string | null) => Promise<Page<T>>;

/** `limit=…` and, after the first page, `&cursor=…`. */
export function pageQuery(limit: number, cursor: string | null): string {
  return `limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
}

interface SessionBody {
  user_id: string;
  access_token: string;
  expires_in: number;
}

// Makes the server keep the refresh token in its httpOnly cookie; a page of another site
// cannot send this header with the cookie (see README: Web UI, Tokens).
const WEB_CLIENT = { 'x-onair-client': 'web' };

/** An error answer of the API: its stable code, human message and the field it is about. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field: string | null = null,
  ) {
    super(message);
  }
}

let session: SessionBody | null = null;
const listeners = new Set<() => void>();

export function signedInAs(): string | null {
  return session?.user_id ?? null;
}

/** The in-memory access token, for the chat socket's `auth` frame (never put in a URL). */
export function accessToken(): string | null {
  return session?.access_token ?? null;
}

export function onSessionChange(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function setSession(next: SessionBody | null) {
  session = next;
  listeners.forEach((l) => l());
}

/**
 * One API call with the session's token (and any extra `headers`); a 401 refreshes the
 * session once and retries.
 */
export async function call<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
  const send = () => {
    const all = { ...headers };
    if (body !== undefined) all['content-type'] = 'application/json';
    if (session) all.authorization = `Bearer ${session.access_token}`;
    return fetch(`/api${path}`, {
      method,
      headers: all,
      body: body === undefined ? undefined : JSON.stringify(body),
      // Public reads may be cached (a CDN's business); the page polls, so it revalidates
      // every time: an unchanged answer is a 304 on its ETag.
      cache: 'no-cache',
    });
  };
  const response = await send();
  return answer<T>(response.status === 401 && session && (await refresh()) ? await send() : response);
}

async function answer<T>(response: Response): Promise<T> {
  if (!response.ok) throw await errorOf(response);
  return response.status === 204 ? (undefined as T) : response.json();
}

/** A failed answer's `{"error":{code,message,field?}}` as an `ApiError`. */
export async function errorOf(response: Response): Promise<ApiError> {
  const error = await response.json().catch(() => null);
  return new ApiError(
    response.status,
    error?.error?.code ?? 'http_error',
    error?.error?.message ?? `request failed (${response.status})`,
    error?.error?.field ?? null,
  );
}

/**
 * A request with the session's token whose answer the caller reads itself (a raw body such
 * as an image, or a streamed answer such as server-sent events); a 401 refreshes the session
 * once and retries. Tokens stay out of URLs.
 */
export async function authorizedFetch(path: string, init: RequestInit = {}): Promise<Response> {
  const send = () => {
    const headers = new Headers(init.headers);
    if (session) headers.set('authorization', `Bearer ${session.access_token}`);
    return fetch(`/api${path}`, { ...init, headers });
  };
  const response = await send();
  return response.status === 401 && session && (await refresh()) ? send() : response;
}

/** A session call: the refresh token goes and comes back in the httpOnly cookie. */
async function sessionCall<T>(path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { ...WEB_CLIENT };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`/api/auth${path}`, {
    method: 'POST',
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return answer<T>(response);
}

// Requests that fail together share one refresh, and tabs take turns (Web Locks): the
// cookie's token works once, and presenting a spent one is treated by the server as
// theft and ends the session. Each tab's turn sends the cookie as the last one left it.
let refreshing: Promise<boolean> | null = null;

/** Trades the refresh cookie (once) for a new access token; false when there is no session. */
function refresh(): Promise<boolean> {
  const attempt = () =>
    sessionCall<SessionBody>('/refresh')
      .then((next) => {
        setSession(next);
        return true;
      })
      .catch(() => {
        setSession(null);
        return false;
      });
  refreshing ??= (navigator.locks ? navigator.locks.request('onair-session', attempt) : attempt()).finally(() => {
    refreshing = null;
  });
  return refreshing;
}

/** Signs back in from the refresh cookie, if there is one (call once at startup). */
export async function restoreSession(): Promise<void> {
  await refresh();
}

export async function signUp(username: string, email: string, password: string) {
  setSession(await sessionCall<SessionBody>('/signup', { username, email, password }));
}

export async function logIn(login: string, password: string) {
  setSession(await sessionCall<SessionBody>('/login', { login, password }));
}

export async function logOut() {
  setSession(null);
  await sessionCall('/logout').catch(() => {});
}

export const api = {
  /** Live broadcasts, most watched first (the server orders and pages them). */
  liveStreams: (limit: number, cursor: string | null) =>
    call<Page<Stream>>(
      'GET',
      `/streams?status=live&sort=viewers&${pageQuery(limit, cursor)}`,
    ),
  stream: (id: string) => call<Stream>('GET', `/streams/${id}`),
  user: (id: string) => call<Profile>('GET', `/users/${id}`),
  me: () => call<Profile>('GET', '/users/me'),
  updateMe: (patch: { display_name?: string | null; bio?: string }) =>
    call<Profile>('PATCH', '/users/me', patch),
  follow: (id: string) => call<void>('POST', `/users/${id}/follow`),
  unfollow: (id: string) => call<void>('DELETE', `/users/${id}/follow`),
  streamKey: () => call<StreamKey>('GET', '/me/stream-key'),
  rotateStreamKey: () => call<StreamKey>('POST', '/me/stream-key/rotate'),
  archive: (id: string) => call<Archive>('GET', `/archives/${id}`),
  channelArchives: (channelId: string, limit: number): PageFetch<Archive> => (cursor) =>
    call('GET', `/users/${channelId}/archives?${pageQuery(limit, cursor)}`),
  setArchiveVisibility: (id: string, visibility: Visibility) =>
    call<Archive>('PATCH', `/archives/${id}`, { visibility }),
  deleteArchive: (id: string) => call<void>('DELETE', `/archives/${id}`),
  createClip: (request: ClipRequest) => call<Clip>('POST', '/clips', request),
  clip: (id: string) => call<Clip>('GET', `/clips/${id}`),
  channelClips: (channelId: string, limit: number): PageFetch<Clip> => (cursor) =>
    call('GET', `/users/${channelId}/clips?${pageQuery(limit, cursor)}`),
  deleteClip: (id: string) => call<void>('DELETE', `/clips/${id}`),
  viewerToken: (streamId: string) =>
    call<{ viewer_token: string; expires_in: number }>('POST', `/streams/${streamId}/viewer-token`),
  /** `viewerToken`: an anonymous viewer's (see heartbeat.ts); null when signed in. */
  heartbeat: (streamId: string, viewerToken: string | null) =>
    call<void>('POST', `/streams/${streamId}/heartbeat`, viewerToken ? { viewer_token: viewerToken } : {}),
};

export function displayName(user: UserSummary): string {
  return user.display_name || user.username;
}
