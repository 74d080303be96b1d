import type { ComponentChildren } from 'preact';
import { useEffect, useRef } from 'preact/hooks';

export interface ConfirmRequest {
  title: string;
  body: ComponentChildren;
  confirmLabel: string;
  danger?: boolean;
  run(): Promise<void>;
}

/** A modal <dialog>: focus moves in and is trapped by the browser; Escape cancels. */
export function ConfirmDialog(props: {
  request: ConfirmRequest | undefined;
  busy: boolean;
  onCancel(): void;
  onConfirm(): void;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    if (props.request && !dialog.open) dialog.showModal();
    if (!props.request && dialog.open) dialog.close();
  }, [props.request]);
  return (
    <dialog
      ref={ref}
      aria-labelledby="confirm-title"
      onCancel={(e) => {
        e.preventDefault();
        props.onCancel();
      }}
    >
      {props.request && (
        <form
          method="dialog"
          onSubmit={(e) => {
            e.preventDefault();
            props.onConfirm();
          }}
        >
          <h2 id="confirm-title">{props.request.title}</h2>
          <div class="confirm-body">{props.request.body}</div>
          <div class="actions">
            <button type="button" class="secondary" onClick={props.onCancel} disabled={props.busy}>
              Cancel
            </button>
            <button type="submit" class={props.request.danger ? 'danger' : ''} disabled={props.busy}>
              {props.busy ? 'Working…' : props.request.confirmLabel}
            </button>
          </div>
        </form>
      )}
    </dialog>
  );
}
