// The one home for time: waits that honour a stop signal, deadlines, exponential backoff. Everything
// that sleeps, races a timer or retries uses these (as nats.js keeps delay/deadline/backoff in one util).

/** Resolves after `ms`, or at once when the signal aborts (never rejects). */
export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, Math.max(0, ms));
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * Resolves once performance.now() has reached `atMs`, never before: for waits that are a minimum by
 * contract (the silence between RTU frames). Bun's timers run on whole milliseconds (measured with
 * Bun 1.4.5: setTimeout(1.75) and setTimeout(0.5) both fired after ~1.1 ms, setTimeout(1) after
 * 1.05-1.1, setTimeout(2) after 2.03-2.2), so `delay(1.75)` cuts the wait short. The timer gets the wait
 * rounded up to whole milliseconds (at most ~1 ms too long, and no CPU spent); should it still fire
 * early, event-loop turns wait out the rest.
 */
export async function sleepUntil(atMs: number): Promise<void> {
  const left = atMs - performance.now();
  if (left > 0) await delay(Math.ceil(left));
  while (performance.now() < atMs) await new Promise<void>((r) => setImmediate(r));
}

export const TIMED_OUT: unique symbol = Symbol("timed out");
export const ABORTED: unique symbol = Symbol("aborted");

/**
 * `p`'s value, or TIMED_OUT after `ms`, or ABORTED when the signal aborts first. A rejection of `p`
 * is passed on. The timer is always cleared; `p` itself is not cancelled (it may still settle later).
 */
export async function deadline<T>(p: Promise<T>, ms: number, signal?: AbortSignal): Promise<T | typeof TIMED_OUT | typeof ABORTED> {
  if (signal?.aborted) return ABORTED;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onAbort: (() => void) | undefined;
  try {
    return await Promise.race<T | typeof TIMED_OUT | typeof ABORTED>([
      p,
      new Promise<typeof TIMED_OUT>((resolve) => (timer = setTimeout(() => resolve(TIMED_OUT), Math.max(0, ms)))),
      ...(signal ? [new Promise<typeof ABORTED>((resolve) => signal.addEventListener("abort", (onAbort = () => resolve(ABORTED)), { once: true }))] : []),
    ]);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener("abort", onAbort);
  }
}

/** true when `p` settles (either way) within `ms`, false otherwise. */
export async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  return (await deadline(p.then(() => true, () => true), ms)) === true;
}

export interface BackoffSettings {
  initialMs: number;
  maxMs: number;
}

/** Delay before retry `attempt` (1-based): initial, 2x, 4x ... capped at max. */
export function backoffDelay(attempt: number, s: BackoffSettings): number {
  return Math.min(s.maxMs, s.initialMs * 2 ** Math.min(30, Math.max(0, attempt - 1)));
}

export interface Deferred<T> {
  promise: Promise<T>;
  resolve(v: T): void;
  reject(e: unknown): void;
}

export function deferred<T = void>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}
