import { useCallback, useEffect, useState } from 'preact/hooks';
import { describeError } from '../lib/api.js';

/** Loads once (and again on `reload`), keeping the last result and any error message. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[]) {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<string>();
  const [loading, setLoading] = useState(true);
  const reload = useCallback(() => {
    setLoading(true);
    load().then(
      (value) => {
        setData(value);
        setError(undefined);
        setLoading(false);
      },
      (err: unknown) => {
        setError(describeError(err));
        setLoading(false);
      },
    );
  }, deps);
  useEffect(reload, [reload]);
  return { data, error, loading, reload };
}
