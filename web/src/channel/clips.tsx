import { api } from '../api';
import { usePaged } from '../paged';
import { duration, MediaSection } from './media-list';

const PAGE_SIZE = 10;

/** The channel's clips, newest first, a page at a time. */
export function ChannelClips({ channelId }: { channelId: string }) {
  const list = usePaged(api.channelClips(channelId, PAGE_SIZE), channelId);
  return (
    <MediaSection
      id="clips"
      heading="Clips"
      empty="No clips yet."
      list={list}
      item={(clip) => ({
        id: clip.id,
        href: `/clips/${clip.id}`,
        title: clip.title,
        thumbnail: clip.thumbnail_url,
        meta: (
          <>
            {duration(clip.duration_secs)}
            {clip.status === 'processing' && ' · Processing'}
            {clip.status === 'failed' && ' · Failed'}
          </>
        ),
      })}
    />
  );
}
