/**
 * One shared one-second timer for every time-left display on screen. Each tick writes the
 * new value straight into the few elements that are mounted (a virtualized list mounts only
 * the rows near the viewport): no component re-renders for a tick, and no timer per row.
 */
type Paint = (msLeft: number) => void;

const shown = new Map<object, { expires: number; paint: Paint }>();
let timer: ReturnType<typeof setInterval> | undefined;

function tick() {
  const now = Date.now();
  for (const { expires, paint } of shown.values()) paint(Math.max(0, expires - now));
}

/** Paints now and on every tick until the returned function is called. */
export function onTtlTick(expires: number, paint: Paint): () => void {
  const key = {};
  shown.set(key, { expires, paint });
  paint(Math.max(0, expires - Date.now()));
  timer ??= setInterval(tick, 1000);
  return () => {
    shown.delete(key);
    if (shown.size === 0 && timer !== undefined) {
      clearInterval(timer);
      timer = undefined;
    }
  };
}
