import { useCallback, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { describeError } from '../lib/api.js';

/**
 * Loads once (and again on `reload` or when `deps` change), keeping the last result and any
 * error message. Only the newest load's answer is kept (a slow, older one is dropped), and
 * `loading` turns true in the same task as the change, so a list is never shown as current
 * while its new answer is on the way.
 */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[]) {
  const [state, setState] = useState<{ data?: T; error?: string; loading: boolean }>({ loading: true });
  const latest = useRef(0);
  const reload = useCallback(() => {
    const run = ++latest.current;
    setState((s) => ({ ...s, loading: true }));
    load().then(
      (data) => run === latest.current && setState({ data, loading: false }),
      (err: unknown) =>
        run === latest.current && setState((s) => ({ ...s, error: describeError(err), loading: false })),
    );
  }, deps);
  useLayoutEffect(reload, [reload]);
  return { ...state, reload };
}
