import { displayName } from '../api';
import { useChannel } from '../channel/resolve';
import { Broadcast, ChannelGate } from './channel';

/** The player alone, for other sites to frame (the only page that may be framed). */
export function Embed({ idOrName }: { idOrName: string }) {
  // No chat socket here to say when the channel changes: polled.
  const view = useChannel(idOrName, null, 10_000);
  return (
    <ChannelGate view={view} idOrName={idOrName}>
      {(profile) => (
        <section class="embed-channel" aria-labelledby="channel-name">
          <div class="embed-head">
            <h1 id="channel-name">{displayName(profile)}</h1>
            <a href={`/c/${encodeURIComponent(profile.username)}`} target="_blank" rel="noopener">
              Watch on OnAir
            </a>
          </div>
          <Broadcast profile={profile} stream={view.stream} />
        </section>
      )}
    </ChannelGate>
  );
}
