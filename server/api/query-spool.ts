// A CSV or Arrow download whose headers say what the whole body holds (X-Row-Count, X-Truncated): a
// result cut by the row limit or the byte budget is only known to be cut at its end, and HTTP headers go
// first (browsers' fetch reads no trailers). So the encoded body is read to its end before the answer
// starts: kept in memory up to `memoryBytes`, spilled to a temp file past that (the result budget,
// query.maxResultBytes, bounds the file as it bounds the rows), then sent and the file deleted. A query
// that fails meanwhile (time limit, a value over the budget, the client gone) still gets its HTTP error
// status instead of a body that stops short.
import { randomUUID } from "node:crypto";
import { open, unlink, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { ParquetExporter } from "../../storage/index.ts";

/** Encoded bytes held in memory before the body goes to a temp file (most downloads stay below). */
export const SPOOL_MEMORY_BYTES = 4 * 1024 * 1024;

/** A body read to its end: in memory, or a temp file streamed (and deleted) when sent. */
export interface SpooledBody {
  body: Blob | ReadableStream<Uint8Array>;
  bytes: number;
}

/** A temp file being written: its path and handle. */
interface Spill {
  path: string;
  file: FileHandle;
}

/** Reads `stream` to its end (see the header); a failure of the stream is thrown as it is, the temp file removed. */
export async function spoolBody(stream: ReadableStream<Uint8Array>, dir: string, memoryBytes = SPOOL_MEMORY_BYTES): Promise<SpooledBody> {
  const reader = stream.getReader();
  const held: Uint8Array[] = [];
  let bytes = 0;
  let spill: Spill | null = null;
  try {
    for (;;) {
      const n = await reader.read();
      if (n.done) break;
      bytes += n.value.length;
      if (spill) await spill.file.write(n.value);
      else {
        held.push(n.value);
        if (bytes > memoryBytes) spill = await spillTo(dir, held.splice(0));
      }
    }
    // the encoders' chunks (TextEncoder, Arrow's writer) are ArrayBuffer-backed, never shared memory
    if (!spill) return { body: new Blob(held as Uint8Array<ArrayBuffer>[]), bytes };
    await spill.file.close();
    return { body: ParquetExporter.stream(spill.path), bytes };
  } catch (e) {
    await reader.cancel().catch(() => undefined);
    if (spill) {
      await spill.file.close().catch(() => undefined);
      await unlink(spill.path).catch(() => undefined);
    }
    throw e;
  }
}

async function spillTo(dir: string, parts: Uint8Array[]): Promise<Spill> {
  const path = join(dir, `${randomUUID()}.spool`);
  const file = await open(path, "wx", 0o600);
  try {
    for (const p of parts) await file.write(p);
  } catch (e) {
    await file.close().catch(() => undefined);
    await unlink(path).catch(() => undefined);
    throw e;
  }
  return { path, file };
}
