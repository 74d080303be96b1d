/** Time is injected so that expiry, renewal and rotation are testable without sleeping. */
export type Clock = () => Date;

export const systemClock: Clock = () => new Date();
