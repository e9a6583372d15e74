import { api, type Archive } from '../api';
import { usePaged } from '../paged';
import { duration, MediaSection } from './media-list';

const PAGE_SIZE = 10;

/** What a list says of an archive's state: nothing once it is ready. */
function state(archive: Archive): string | null {
  if (archive.status === 'processing') return 'Processing';
  if (archive.status === 'failed') return 'Processing failed';
  return null;
}

/** The channel's past broadcasts, newest first, a page at a time. */
export function PastBroadcasts({ channelId }: { channelId: string }) {
  const list = usePaged(api.channelArchives(channelId, PAGE_SIZE), channelId);
  return (
    <MediaSection
      id="archives"
      heading="Past broadcasts"
      empty="No past broadcasts yet."
      list={list}
      item={(archive) => ({
        id: archive.id,
        href: `/videos/${archive.id}`,
        title: archive.title,
        thumbnail: archive.thumbnail_url,
        meta: (
          <>
            <time dateTime={archive.created_at}>{new Date(archive.created_at).toLocaleDateString()}</time>
            {archive.duration_secs !== null && ` · ${duration(archive.duration_secs)}`}
            {state(archive) && ` · ${state(archive)}`}
          </>
        ),
      })}
    />
  );
}
