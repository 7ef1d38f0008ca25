// Downloads an API answer as a file (a query result as CSV, Parquet or Arrow): fetched with the session's token
// (a plain link cannot carry a bearer), then handed to the browser as a blob with a file name. A 401
// asks for a login and tries once more, as api() does.
import { ApiError } from "./api.ts";
import { requireLogin, session } from "./session.svelte.ts";

/** What a saved download holds: its size, and (query results) its rows and whether the gateway cut it. */
export interface Downloaded {
  bytes: number;
  /** X-Row-Count, when the answer says */
  rows: number | null;
  /** X-Truncated: the row limit or the result budget cut the result */
  truncated: boolean;
}

/** POSTs `body` to `path` and saves the answer as `filename`. Throws ApiError. */
export async function downloadPost(path: string, body: unknown, filename: string): Promise<Downloaded> {
  for (let attempt = 0; ; attempt++) {
    await requireLogin();
    const r = await fetch(path, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${session.token}` }, body: JSON.stringify(body) });
    if (r.status === 401 && attempt === 0) {
      session.token = null;
      await requireLogin("Your session has ended: log in again to download");
      continue;
    }
    if (!r.ok) {
      const e = (await r.json().catch(() => ({}))) as { error?: string; message?: string; field?: string | null };
      throw new ApiError(r.status, e.error ?? `http_${r.status}`, e.message ?? r.statusText, e.field ?? null);
    }
    const blob = await r.blob();
    const url = URL.createObjectURL(blob);
    const a = document.createElement("a");
    a.href = url;
    a.download = filename;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
    const rows = r.headers.get("x-row-count");
    return { bytes: blob.size, rows: rows === null ? null : Number(rows), truncated: r.headers.get("x-truncated") === "true" };
  }
}
