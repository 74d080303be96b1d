import { useState } from 'preact/hooks';
import { describeError } from '../lib/api.js';
import type { ConfirmRequest } from './Confirm.js';

/** State for one confirmation dialog and the outcome message it leaves behind. */
export function useConfirm() {
  const [request, setRequest] = useState<ConfirmRequest>();
  const [busy, setBusy] = useState(false);
  const [status, setStatus] = useState<{ text: string; error: boolean }>();
  return {
    request,
    busy,
    status,
    setStatus,
    ask: (next: ConfirmRequest) => {
      setStatus(undefined);
      setRequest(next);
    },
    cancel: () => setRequest(undefined),
    confirm: async () => {
      if (!request) return;
      setBusy(true);
      try {
        await request.run();
      } catch (err) {
        setStatus({ text: describeError(err), error: true });
      } finally {
        setBusy(false);
        setRequest(undefined);
      }
    },
  };
}
