// The console's one way to call the gateway: JSON in and out, the session's bearer token, and the API's
// error shape { error, message, field } turned into an ApiError the pages show with <ErrorState>. A 401
// opens the login dialog and retries the request after the login (nothing on the page is lost).
import { requireLogin, session } from "./session.svelte.ts";

/** A refusal of the API (or the network), with the API's code and the input at fault. */
export class ApiError extends Error {
  override name = "ApiError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field: string | null = null,
  ) {
    super(message);
  }
}

export interface ApiOptions {
  method?: string;
  body?: unknown;
  signal?: AbortSignal;
  /** no token: for /api/login itself */
  anonymous?: boolean;
}

/** Calls `path` (under /api) and returns its JSON answer; throws ApiError. */
export async function api<T>(path: string, opts: ApiOptions = {}): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    if (!opts.anonymous) await requireLogin();
    const headers: Record<string, string> = {};
    if (!opts.anonymous && session.token) headers.authorization = `Bearer ${session.token}`;
    if (opts.body !== undefined) headers["content-type"] = "application/json";
    let r: Response;
    try {
      r = await fetch(path, { method: opts.method ?? (opts.body === undefined ? "GET" : "POST"), headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body), signal: opts.signal });
    } catch (e) {
      if ((e as Error).name === "AbortError") throw e;
      throw new ApiError(0, "unreachable", `the gateway does not answer (${(e as Error).message}); is it running?`);
    }
    if (r.status === 401 && !opts.anonymous && attempt < 3) {
      session.token = null;
      await requireLogin("Your session has ended: log in again to continue where you were");
      continue;
    }
    if (!r.ok) throw await errorOf(r);
    const type = r.headers.get("content-type") ?? "";
    return (type.includes("json") ? await r.json() : await r.text()) as T;
  }
}

async function errorOf(r: Response): Promise<ApiError> {
  try {
    const body = (await r.json()) as { error?: string; message?: string; field?: string | null };
    return new ApiError(r.status, body.error ?? `http_${r.status}`, body.message ?? r.statusText, body.field ?? null);
  } catch {
    return new ApiError(r.status, `http_${r.status}`, `${r.status} ${r.statusText}`);
  }
}

/** Calls `load` now and every `everyMs` while the page is open; returns the stop function (for $effect). */
export function every(everyMs: number, load: () => Promise<unknown> | unknown): () => void {
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | null = null;
  const tick = async () => {
    try {
      await load();
    } finally {
      if (!stopped) timer = setTimeout(tick, everyMs);
    }
  };
  void tick();
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
  };
}
