// Small pieces every dashboard section uses: errors, a field's error, "Load more", names.
import { displayName, type UserSummary } from '../api';
import { errorField } from './api';
import type { PagedList } from '../paged';

/** An error, unless it is about one of `fields` (a `FieldError` shows those). */
export function Alert({ error, fields = [], context }: { error: unknown; fields?: string[]; context?: string }) {
  if (!error) return null;
  const field = errorField(error)?.field;
  if (field && fields.includes(field)) return null;
  const message = error instanceof Error ? error.message : String(error);
  return <p role="alert">{context ? `${context}: ${message}` : message}</p>;
}

/** The id an input's `aria-describedby` points at for its error. */
export const errorId = (id: string) => `${id}-error`;

/** The server's complaint about the field `field`, shown under its input `id`. */
export function FieldError({ error, field, id }: { error: unknown; field: string; id: string }) {
  const found = errorField(error);
  if (found?.field !== field) return null;
  return (
    <p id={errorId(id)} class="field-error" role="alert">
      {found.reason}
    </p>
  );
}

/** aria props of an input whose errors `FieldError` shows. */
export function describedBy(error: unknown, field: string, id: string) {
  const invalid = errorField(error)?.field === field;
  return { 'aria-invalid': invalid || undefined, 'aria-describedby': invalid ? errorId(id) : undefined };
}

export function LoadMore<T>({ list }: { list: PagedList<T> }) {
  return (
    <>
      <Alert error={list.items && list.error} />
      {list.hasMore && (
        <button type="button" class="secondary" onClick={list.loadMore}>
          Load more
        </button>
      )}
    </>
  );
}

/** A loading line, the first page's error, or the empty message. */
export function ListState<T>({ list, empty, what }: { list: PagedList<T>; empty: string; what: string }) {
  if (list.items === null) return list.error ? <Alert error={list.error} context={`Could not load ${what}`} /> : <p>Loading…</p>;
  return list.items.length === 0 ? <p>{empty}</p> : null;
}

export function UserName({ user }: { user: UserSummary }) {
  const name = displayName(user);
  return (
    <span class="user-name">
      {name}
      {name !== user.username && <span class="muted"> @{user.username}</span>}
    </span>
  );
}

export function plural(count: number, one: string, many: string): string {
  return `${count} ${count === 1 ? one : many}`;
}

export function DateTime({ value }: { value: string }) {
  return <time dateTime={value}>{new Date(value).toLocaleString()}</time>;
}
