/**
 * A sleep that `wake()` ends early: background loops (informer relists, leader election
 * retries) wait with it and are woken when they are stopped.
 */
export function interruptibleSleep() {
  let wake: (() => void) | undefined;
  return {
    sleep: (ms: number) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, ms);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      }),
    wake: () => wake?.(),
  };
}
