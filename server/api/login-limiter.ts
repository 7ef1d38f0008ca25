// Failed-login counting for POST /api/login: per user name and per client address, in a sliding window.
// Checked before the password is: a locked-out name answers the same whether the password was right,
// so guessing cannot continue behind the lock. Memory is bounded (oldest keys dropped first).
export interface LimiterOptions {
  /** failures of one user name within the window before it is locked */
  perUser: number;
  /** failures from one address within the window before it is locked */
  perAddress: number;
  windowMs: number;
  /** keys remembered at most */
  maxKeys: number;
}

export const LOGIN_LIMITS: LimiterOptions = { perUser: 5, perAddress: 20, windowMs: 5 * 60_000, maxKeys: 10_000 };

export class LoginLimiter {
  private readonly failures = new Map<string, number[]>();

  constructor(private readonly opts: LimiterOptions = LOGIN_LIMITS) {}

  /** Milliseconds until `user` from `address` may try again; 0 when it may now. */
  retryAfterMs(user: string, address: string, now = Date.now()): number {
    const wait = (key: string, limit: number) => {
      const recent = this.recent(key, now);
      return recent.length >= limit ? recent[recent.length - limit]! + this.opts.windowMs - now : 0;
    };
    return Math.max(wait(`u:${user}`, this.opts.perUser), wait(`a:${address}`, this.opts.perAddress));
  }

  failed(user: string, address: string, now = Date.now()): void {
    for (const key of [`u:${user}`, `a:${address}`]) {
      const list = this.recent(key, now);
      list.push(now);
      this.failures.delete(key); // re-inserted last: Map order is the eviction order
      this.failures.set(key, list);
    }
    while (this.failures.size > this.opts.maxKeys) this.failures.delete(this.failures.keys().next().value!);
  }

  succeeded(user: string): void {
    this.failures.delete(`u:${user}`);
  }

  private recent(key: string, now: number): number[] {
    const list = (this.failures.get(key) ?? []).filter((t) => t > now - this.opts.windowMs);
    if (list.length) this.failures.set(key, list);
    else this.failures.delete(key);
    return list;
  }
}
