// A cursor-paginated list, shared by the dashboard and the channel page.
import { useEffect, useRef, useState } from 'preact/hooks';
import type { PageFetch } from './api';

export interface PagedList<T> {
  /** Null until the first page arrives. */
  items: T[] | null;
  error: unknown;
  hasMore: boolean;
  loadMore: () => void;
  reload: () => void;
}

/** A cursor-paginated list: the first page loads (again) whenever `version` changes. */
export function usePaged<T>(fetchPage: PageFetch<T>, version: unknown): PagedList<T> {
  const [items, setItems] = useState<T[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [reloads, setReloads] = useState(0);
  const fetchRef = useRef(fetchPage);
  fetchRef.current = fetchPage;
  // Answers of a superseded load are dropped.
  const generation = useRef(0);

  const load = async (cursor: string | null) => {
    const mine = generation.current;
    try {
      const page = await fetchRef.current(cursor);
      if (mine !== generation.current) return;
      setItems((previous) => (cursor ? [...(previous ?? []), ...page.data] : page.data));
      setNext(page.pagination.has_more ? page.pagination.next_cursor : null);
      setError(null);
    } catch (e) {
      if (mine === generation.current) setError(e);
    }
  };

  useEffect(() => {
    generation.current += 1;
    load(null);
  }, [version, reloads]);

  return {
    items,
    error,
    hasMore: next !== null,
    loadMore: () => next && load(next),
    reload: () => setReloads((n) => n + 1),
  };
}
