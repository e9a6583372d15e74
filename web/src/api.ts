// The API client. The session (access and refresh tokens) lives only in this module's
// memory: never in localStorage, sessionStorage or cookies readable by scripts, so a
// third-party script cannot lift it. A reload therefore logs the user out (see README).

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
  owner: UserSummary;
}

export interface StreamKey {
  stream_key: string;
  rtmp_url: string;
}

export interface Page<T> {
  data: T[];
  pagination: { next_cursor: string | null; has_more: boolean };
}

interface SessionBody {
  user_id: string;
  access_token: string;
  refresh_token: string;
  expires_in: number;
}

/** An error answer of the API: its stable code and human message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
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

/** One API call with the session's token; a 401 refreshes the session once and retries. */
export async function call<T>(method: string, path: string, body?: unknown, retried = false): Promise<T> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (session) headers.authorization = `Bearer ${session.access_token}`;
  const response = await fetch(`/api${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401 && session && !retried && (await refresh())) {
    return call(method, path, body, true);
  }
  if (!response.ok) {
    const error = await response.json().catch(() => null);
    throw new ApiError(
      response.status,
      error?.error?.code ?? 'http_error',
      error?.error?.message ?? `request failed (${response.status})`,
    );
  }
  return response.status === 204 ? (undefined as T) : response.json();
}

// Requests that fail together share one refresh: presenting a refresh token twice is
// treated by the server as theft and ends the session.
let refreshing: Promise<boolean> | null = null;

/** Trades the refresh token (once) for a new pair; false when the session is gone. */
function refresh(): Promise<boolean> {
  const current = session;
  if (!current) return Promise.resolve(false);
  refreshing ??= fetch('/api/auth/refresh', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ refresh_token: current.refresh_token }),
  })
    .then(async (response) => {
      setSession(response.ok ? await response.json() : null);
      return response.ok;
    })
    .catch(() => false)
    .finally(() => {
      refreshing = null;
    });
  return refreshing;
}

export async function signUp(username: string, email: string, password: string) {
  setSession(await call<SessionBody>('POST', '/auth/signup', { username, email, password }));
}

export async function logIn(login: string, password: string) {
  setSession(await call<SessionBody>('POST', '/auth/login', { login, password }));
}

export async function logOut() {
  const current = session;
  setSession(null);
  if (current) {
    await call('POST', '/auth/logout', { refresh_token: current.refresh_token }).catch(() => {});
  }
}

export const api = {
  liveStreams: () => call<Page<Stream>>('GET', '/streams?status=live&limit=100'),
  stream: (id: string) => call<Stream>('GET', `/streams/${id}`),
  user: (id: string) => call<Profile>('GET', `/users/${id}`),
  me: () => call<Profile>('GET', '/users/me'),
  updateMe: (patch: { display_name?: string | null; bio?: string }) =>
    call<Profile>('PATCH', '/users/me', patch),
  follow: (id: string) => call<void>('POST', `/users/${id}/follow`),
  unfollow: (id: string) => call<void>('DELETE', `/users/${id}/follow`),
  streamKey: () => call<StreamKey>('GET', '/me/stream-key'),
  rotateStreamKey: () => call<StreamKey>('POST', '/me/stream-key/rotate'),
  heartbeat: (streamId: string, viewerId: string) =>
    call<void>('POST', `/streams/${streamId}/heartbeat`, { viewer_id: viewerId }),
};

export function displayName(user: UserSummary): string {
  return user.display_name || user.username;
}
