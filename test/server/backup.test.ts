// Online backup (storage/backup.ts, POST /api/backup): taken while frames are appended and archived,
// restored into a new data directory, it opens as a log holding exactly the frames 1..head of the
// backup (hot table + Parquet archive), gapless, and the restored log takes new frames after them.
import { afterEach, describe, expect, it } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { SignJWT } from "jose";
import type { Frame } from "../../schemas/index.ts";
import { backupLog, restoreBackup, BackupError } from "../../storage/backup.ts";
import { EventLog, QueryEngine } from "../../storage/index.ts";
import { Retention } from "../../storage/retention.ts";
import { startGateway } from "../helpers/gateway.ts";
import { tempDir, waitFor } from "../helpers/index.ts";

const frames = (n: number, from: number): Frame[] =>
  Array.from({ length: n }, (_, i) => ({ kind: "data" as const, tag: `t${(from + i) % 5}`, value: from + i, ts: (Date.now() - 60_000) * 1000 + from + i, quality: 0, source: "sim" }));

let cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

async function openLog(dataDir: string) {
  const archiveDir = join(dataDir, "archive");
  const log = await EventLog.open({ path: join(dataDir, "log.duckdb"), sandbox: { archiveDir }, maxDelayMs: 1 });
  const q = new QueryEngine(log, { archiveDir });
  await q.start();
  const close = async () => (await q.stop(), await log.close());
  return { log, q, close };
}

/** offset, tag, value of every frame (hot table and archive) up to `head`. */
const rowsUpTo = async (q: QueryEngine, head: number) => (await q.all(`SELECT "offset", tag, value FROM frames_all WHERE "offset" <= ${head} ORDER BY "offset"`)).rows;

/** Every restored frame is there once: offsets 1..head without a gap. */
async function expectGapless(q: QueryEngine, head: number): Promise<void> {
  const [count, distinct, min, max] = (await q.all(`SELECT count(*), count(DISTINCT "offset"), min("offset"), max("offset") FROM frames_all`)).rows[0]!.map(Number);
  expect({ count, distinct, min, max }).toEqual({ count: head, distinct: head, min: 1, max: head });
}

describe("online backup of the log", () => {
  it("copies a consistent state while frames are appended, and the restore holds frames 1..head with the archive", async () => {
    const tmp = tempDir("edge-backup-");
    cleanup.push(() => tmp.cleanup());
    const src = await openLog(join(tmp.path, "data"));
    cleanup.push(src.close);
    await src.log.append(frames(3000, 0));
    await new Retention(src.log, join(tmp.path, "data", "archive"), { maxAgeHours: 0, maxFrames: 1000, archive: true, chunkFrames: 1000 }).run();
    await src.q.refreshArchive();

    let ingesting = true;
    const ingest = (async () => {
      for (let i = 3000; ingesting; i += 100) await src.log.append(frames(100, i));
    })();
    await waitFor(() => src.log.head >= 4000, "ingest running");
    const b = await backupLog(src.log, join(tmp.path, "data", "archive"), join(tmp.path, "backups", "b1"));
    await waitFor(() => src.log.head > b.head, "ingest going on after the backup");
    ingesting = false;
    await ingest;

    expect(b.head).toBeGreaterThanOrEqual(4000);
    expect(b.archived).toBe(2000);
    expect(b.archiveFiles).toBeGreaterThan(0);
    expect(existsSync(join(b.path, "log.duckdb.wal"))).toBe(false);
    expect(existsSync(join(b.path, "backup.json"))).toBe(true);

    restoreBackup(b.path, join(tmp.path, "restored"));
    const restored = await openLog(join(tmp.path, "restored"));
    cleanup.push(restored.close);
    await restored.q.refreshArchive();
    expect(restored.log.head).toBe(b.head);
    await expectGapless(restored.q, b.head);
    expect(await rowsUpTo(restored.q, b.head)).toEqual(await rowsUpTo(src.q, b.head));
    // the restored log is a working log: the next frame gets the next offset
    expect((await restored.log.append(frames(1, 0))).last).toBe(b.head + 1);
  });

  it("refuses to restore over an existing log", async () => {
    const tmp = tempDir("edge-backup-");
    cleanup.push(() => tmp.cleanup());
    const src = await openLog(join(tmp.path, "data"));
    await src.log.append(frames(10, 0));
    const b = await backupLog(src.log, join(tmp.path, "data", "archive"), join(tmp.path, "b"));
    await src.close();
    expect(() => restoreBackup(b.path, join(tmp.path, "data"))).toThrow(BackupError);
  });
});

const SECRET = "backup-test-secret-0123456789-abcdefghij";
const tokenWith = (scope: string) =>
  new SignJWT({ sub: "ops", tenant: "default", scope }).setProtectedHeader({ alg: "HS256" }).setExpirationTime("5m").sign(new TextEncoder().encode(SECRET));

describe("POST /api/backup", () => {
  it("needs the admin scope, writes under <dataDir>/backups while ingesting, and the backup restores gapless", async () => {
    const g = await startGateway({
      "gateway.yml": `auth: { hs256Secret: "${SECRET}" }\nlog: { maxDelayMs: 5 }\n`,
      "drivers.yml": "drivers:\n  - id: sim\n    type: simulator\n    config: { intervalMs: 10 }\n",
      "variables.yml": "tags:\n" + Array.from({ length: 20 }, (_, i) => `  - { tag: plant/t${i}, driver: sim, type: float64 }\n`).join(""),
    });
    cleanup.push(() => g.stop());
    await waitFor(() => g.gw.ctx.log.head > 500, "frames committed");
    const post = async (token?: string) => fetch(`${g.url}/api/backup`, { method: "POST", headers: token ? { authorization: `Bearer ${token}` } : {} });

    expect((await post()).status).toBe(401);
    const readOnly = await post(await tokenWith("read write"));
    expect(readOnly.status).toBe(403);
    expect(((await readOnly.json()) as { error: string }).error).toBe("insufficient_scope");

    const res = await post(await tokenWith("admin"));
    expect(res.status).toBe(200);
    const b = (await res.json()) as { path: string; head: number };
    expect(b.path.startsWith(join(g.dir, "data", "backups") + "/")).toBe(true);
    expect(b.head).toBeGreaterThan(500);

    restoreBackup(b.path, join(g.dir, "restored"));
    const restored = await openLog(join(g.dir, "restored"));
    cleanup.push(restored.close);
    expect(restored.log.head).toBe(b.head);
    await expectGapless(restored.q, b.head);
  });
});
