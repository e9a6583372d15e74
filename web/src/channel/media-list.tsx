// The channel page's lists of videos (past broadcasts, clips): thumbnail, title, facts.
import type { ComponentChildren } from 'preact';
import { ListState, LoadMore } from '../dashboard/ui';
import type { PagedList } from '../paged';

/** `1:02:03` or `2:03`. */
export function duration(secs: number): string {
  const total = Math.round(secs);
  const [h, m, s] = [Math.floor(total / 3600), Math.floor(total / 60) % 60, total % 60];
  const two = (n: number) => String(n).padStart(2, '0');
  return h > 0 ? `${h}:${two(m)}:${two(s)}` : `${m}:${two(s)}`;
}

export interface MediaItem {
  id: string;
  href: string;
  title: string;
  thumbnail: string | null;
  /** Date, length, state. */
  meta: ComponentChildren;
}

/** A titled section listing `list`, a page at a time ("Load more"). */
export function MediaSection<T>({ id, heading, empty, list, item }: {
  id: string;
  heading: string;
  empty: string;
  list: PagedList<T>;
  item: (value: T) => MediaItem;
}) {
  return (
    <section class="archives" aria-labelledby={`${id}-heading`}>
      <h2 id={`${id}-heading`}>{heading}</h2>
      <ListState list={list} empty={empty} what={heading.toLowerCase()} />
      {list.items && list.items.length > 0 && (
        <ul class="archive-list">
          {list.items.map(item).map((m) => (
            <li key={m.id}>
              {m.thumbnail && <img src={m.thumbnail} alt="" width={160} height={90} loading="lazy" />}
              <a href={m.href} class="archive-title">
                {m.title}
              </a>{' '}
              <span class="archive-meta">{m.meta}</span>
            </li>
          ))}
        </ul>
      )}
      <LoadMore list={list} />
    </section>
  );
}
