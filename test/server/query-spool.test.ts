// The download spool (server/api/query-spool.ts): a body read to its end before its headers go out,
// held in memory below the window and in a temp file past it, the file deleted once sent or when the
// body failed; the stream's own error comes back as it is (so the route answers its HTTP status).
import { afterAll, describe, expect, it } from "bun:test";
import { readdirSync } from "node:fs";
import { spoolBody } from "../../server/api/query-spool.ts";
import { QueryTimeout } from "../../storage/index.ts";
import { tempDir, waitFor } from "../helpers/index.ts";

const dir = tempDir("query-spool-");
afterAll(() => dir.cleanup());
const enc = new TextEncoder();

/** A stream of `parts`, failing with `error` after them when given. */
function streamOf(parts: string[], error?: Error): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream<Uint8Array>({
    pull(c) {
      if (i < parts.length) c.enqueue(enc.encode(parts[i++]!));
      else if (error) c.error(error);
      else c.close();
    },
  });
}
const text = async (body: Blob | ReadableStream<Uint8Array>) => new Response(body).text();

describe("spoolBody", () => {
  it("keeps a body within the window in memory and writes no file", async () => {
    const s = await spoolBody(streamOf(["a,b\n", "1,2\n"]), dir.path, 100);
    expect(s.bytes).toBe(8);
    expect(readdirSync(dir.path)).toEqual([]);
    expect(await text(s.body)).toBe("a,b\n1,2\n");
  });

  it("spills a body past the window to a temp file, sends it whole and deletes the file once read", async () => {
    const parts = Array.from({ length: 50 }, (_, i) => `${i},${"y".repeat(20)}\n`);
    const s = await spoolBody(streamOf(parts), dir.path, 100);
    expect(s.bytes).toBe(parts.join("").length);
    expect(readdirSync(dir.path)).toHaveLength(1);
    expect(await text(s.body)).toBe(parts.join(""));
    // removed once the stream ended (the unlink runs after the last chunk is handed over)
    await waitFor(() => readdirSync(dir.path).length === 0, "the temp file removed", 5000, 5);
  });

  it("throws the stream's own error after spilling, and leaves no file behind", async () => {
    const failed = spoolBody(streamOf(Array.from({ length: 20 }, () => "x".repeat(30)), new QueryTimeout(1000)), dir.path, 100);
    await expect(failed).rejects.toBeInstanceOf(QueryTimeout);
    expect(readdirSync(dir.path)).toEqual([]);
  });
});
