// Viewer heartbeats. Signed-in viewers are counted by their account; anonymous ones by a
// viewer token the server signs for one broadcast, kept per tab in sessionStorage (it
// names no one and grants nothing but being counted) and renewed when it expires or the
// server refuses it.
import { ApiError, api, signedInAs } from './api';

interface Kept {
  token: string;
  /** Epoch ms after which a new one is fetched (a little before the server's expiry). */
  until: number;
}

const key = (streamId: string) => `onair:viewer-token:${streamId}`;

async function viewerToken(streamId: string, renew: boolean): Promise<string> {
  const kept: Kept | null = renew ? null : JSON.parse(sessionStorage.getItem(key(streamId)) ?? 'null');
  if (kept && kept.until > Date.now()) return kept.token;
  const { viewer_token, expires_in } = await api.viewerToken(streamId);
  const fresh: Kept = { token: viewer_token, until: Date.now() + Math.max(expires_in - 30, 1) * 1000 };
  sessionStorage.setItem(key(streamId), JSON.stringify(fresh));
  return viewer_token;
}

/** "Still watching" for `streamId`. */
export async function heartbeat(streamId: string): Promise<void> {
  if (signedInAs()) return api.heartbeat(streamId, null);
  try {
    await api.heartbeat(streamId, await viewerToken(streamId, false));
  } catch (error) {
    if (!(error instanceof ApiError && error.code === 'invalid_viewer_token')) throw error;
    await api.heartbeat(streamId, await viewerToken(streamId, true));
  }
}
