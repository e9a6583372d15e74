import { displayName } from '../api';
import { useChannel } from '../channel/resolve';
import { ChatOverlay } from '../chat/overlay';
import { ChatPanel } from '../chat/panel';
import { ChannelGate } from './channel';

/** The chat panel alone, full height, in a window of its own. */
export function Popout({ idOrName, user }: { idOrName: string; user: string | null }) {
  const view = useChannel(idOrName, user, null);
  return (
    <ChannelGate view={view} idOrName={idOrName}>
      {(profile) => (
        <>
          <h1 class="visually-hidden">{`Chat of ${displayName(profile)}`}</h1>
          <ChatPanel key={profile.id} channelId={profile.id} signedIn={user !== null} />
        </>
      )}
    </ChannelGate>
  );
}

/** Recent messages on a transparent page, for OBS (a browser source). */
export function Overlay({ idOrName }: { idOrName: string }) {
  const view = useChannel(idOrName, null, null);
  return (
    <ChannelGate view={view} idOrName={idOrName}>
      {(profile) => <ChatOverlay key={profile.id} channelId={profile.id} title={`Chat overlay of ${displayName(profile)}`} />}
    </ChannelGate>
  );
}
