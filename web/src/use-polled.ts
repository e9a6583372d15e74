import { useEffect, useState } from 'preact/hooks';
import { ApiError } from './api';

export interface Polled<T> {
  /** undefined while loading; null when there is none (404). */
  value: T | null | undefined;
  error: string | null;
  set: (value: T) => void;
}

/**
 * A resource read by `load` (again whenever `key` changes), and again every `everyMs`
 * while `pending(value)` (e.g. still processing) or after a failed read.
 */
export function usePolled<T>(load: () => Promise<T>, key: unknown, pending: (value: T) => boolean, everyMs: number): Polled<T> {
  const [value, setValue] = useState<T | null | undefined>(undefined);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let current = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const read = () =>
      load()
        .then((found) => {
          if (!current) return;
          setValue(found);
          setError(null);
          if (pending(found)) timer = setTimeout(read, everyMs);
        })
        .catch((e: Error) => {
          if (!current) return;
          if (e instanceof ApiError && e.status === 404) {
            setValue(null);
          } else {
            setError(e.message);
            timer = setTimeout(read, everyMs);
          }
        });
    read();
    return () => {
      current = false;
      clearTimeout(timer);
    };
  }, [key]);
  return { value, error, set: setValue };
}
