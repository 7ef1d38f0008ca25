// POST /api/query under load while a driver ingests (issue #17): 20 heavy queries each answered 408 within
// its deadline + 1 s, the simulator's frames committed throughout and none lost, 429 with Retry-After
// when the queue is full, the byte budget over HTTP, and a stop (in process, and SIGTERM to a gateway
// process) that does not wait for the queries.
import { afterAll, beforeAll, describe, expect, it, setDefaultTimeout } from "bun:test";
import { historyOf } from "../../server/history.ts";
import { join } from "node:path";
import { tableFromIPC } from "apache-arrow";
import { EventLog, type CommitEvent } from "../../storage/index.ts";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { spawnGateway } from "../helpers/gateway-process.ts";
import { tempDir, waitFor, writeConfig } from "../helpers/index.ts";
import { HS_SECRET, token } from "./commands-fixture.ts";

// gateways start and stop here: generous on a loaded 2-core machine (each test takes 0.3-2.5 s alone)
setDefaultTimeout(20_000);

const HEAVY = `SELECT sum(range) FROM range(1000000000000)`;

const files = (query: string) => ({
  "gateway.yml": `auth: { hs256Secret: "${HS_SECRET}" }\nquery: { ${query} }\n`,
  "drivers.yml": `drivers:\n  - id: sim\n    type: simulator\n    config: { intervalMs: 10, signals: { "load/count": { shape: counter, min: 0, max: 1000000000 } } }\n`,
  "variables.yml": `tags:\n  - { tag: load/count, driver: sim, type: float64 }\n`,
});

let auth: Record<string, string>;
beforeAll(async () => {
  auth = { authorization: `Bearer ${await token(null, { claims: { scope: "read" } })}`, "content-type": "application/json" };
});

const post = (g: TestGateway, body: object) => fetch(`${g.url}/api/query`, { method: "POST", headers: auth, body: JSON.stringify(body) });

describe("POST /api/query while the simulator ingests", () => {
  let g: TestGateway;
  beforeAll(async () => {
    g = await startGateway(files("timeoutMs: 10000, maxQueued: 32, maxResultBytes: 100000"));
    await waitFor(() => g.gw.ctx.log.head > 5, "the simulator's first frames");
  });
  afterAll(() => g.stop());

  it("answers each of 20 concurrent heavy queries 408 within its deadline + 1 s, commits throughout and loses no frame", async () => {
    const commits: number[] = [];
    const onCommit = (e: CommitEvent) => commits.push(e.latencyMs);
    g.gw.ctx.log.on("commit", onCommit);
    const headBefore = g.gw.ctx.log.head;
    const started = performance.now();
    // every one is admitted (queue of 32): none is refused with 429 here
    const answers = await Promise.all(
      Array.from({ length: 20 }, async () => {
        const r = await post(g, { sql: HEAVY, timeoutMs: 1500 });
        return { status: r.status, body: (await r.json()) as { error: string }, ms: performance.now() - started };
      }),
    );
    const during = commits.length;
    g.gw.ctx.log.off("commit", onCommit);
    for (const a of answers) {
      expect(a.status).toBe(408);
      expect(a.body.error).toBe("query_timeout");
      expect(a.ms).toBeLessThan(1500 + 1000);
    }
    // the simulator polls every 10 ms: before the fix, not one commit while the queries ran
    expect(during).toBeGreaterThan(10);
    expect(g.gw.ctx.log.head - headBefore).toBeGreaterThan(50);
    // gapless: the counter's every value is in the log, in order
    const r = await post(g, { sql: `SELECT value FROM data WHERE tag = 'load/count' ORDER BY "offset"` });
    const values = ((await r.json()) as { rows: number[][] }).rows.map((x) => x[0]!);
    expect(values.length).toBeGreaterThan(100);
    expect(values).toEqual(Array.from({ length: values.length }, (_, i) => values[0]! + i));
  });

  it("refuses a single value larger than the byte budget with 422 naming its column", async () => {
    const r = await post(g, { sql: `SELECT repeat('x', 10000000) AS huge` });
    expect(r.status).toBe(422);
    const body = (await r.json()) as { error: string; column: string };
    expect(body).toMatchObject({ error: "result_value_too_large", field: "sql", column: "huge" });
  });

  it("ends a result at the byte budget with the truncated flag", async () => {
    const r = await post(g, { sql: `SELECT range AS i, repeat('y', 100) AS s FROM range(100000)` });
    expect(r.status).toBe(200);
    const text = await r.text();
    expect(text.length).toBeLessThan(150_000);
    const body = JSON.parse(text) as { rows: unknown[]; truncated: boolean };
    expect(body.truncated).toBe(true);
    expect(body.rows.length).toBeGreaterThan(100);
  });
});

describe("POST /api/query at the byte budget in CSV and Arrow", () => {
  let g: TestGateway;
  beforeAll(async () => {
    g = await startGateway(files("maxResultBytes: 100000"));
  });
  afterAll(() => g.stop());
  const sql = `SELECT range AS i, repeat('y', 100) AS s FROM range(100000)`;

  it("ends a CSV result with whole lines at the cut, and says so in X-Truncated", async () => {
    const r = await post(g, { sql, format: "csv" });
    expect(r.status).toBe(200);
    expect(r.headers.get("x-truncated")).toBe("true");
    const lines = (await r.text()).split("\n");
    expect(r.headers.get("x-row-count")).toBe(String(lines.length - 2));
    expect(lines.at(-1)).toBe("");
    expect(lines[0]).toBe("i,s");
    expect(lines.length - 2).toBeGreaterThan(100);
    expect(lines.length - 2).toBeLessThan(100_000);
    expect(lines.slice(1, -1).every((l, k) => l === `${k},${"y".repeat(100)}`)).toBe(true);
  });

  it("ends an Arrow stream that reads back whole at the cut, and says so in X-Truncated", async () => {
    const r = await post(g, { sql, format: "arrow" });
    expect(r.status).toBe(200);
    expect(r.headers.get("x-truncated")).toBe("true");
    const table = tableFromIPC(new Uint8Array(await r.arrayBuffer()));
    expect(r.headers.get("x-row-count")).toBe(String(table.numRows));
    expect(table.numRows).toBeGreaterThan(100);
    expect(table.numRows).toBeLessThan(100_000);
  });
});

describe("POST /api/query when the queue is full", () => {
  it("answers 429 with Retry-After at once", async () => {
    const g = await startGateway(files("timeoutMs: 2000, maxConcurrent: 1, maxQueued: 1"));
    try {
      const held = [post(g, { sql: HEAVY }), post(g, { sql: HEAVY })];
      await waitFor(() => historyLoad(g).queued === 1, "one query running, one waiting");
      const started = performance.now();
      const r = await post(g, { sql: `SELECT 1` });
      expect(performance.now() - started).toBeLessThan(500);
      expect(r.status).toBe(429);
      expect(Number(r.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
      expect(((await r.json()) as { error: string }).error).toBe("too_many_queries");
      for (const h of await Promise.all(held)) expect(h.status).toBe(408);
    } finally {
      await g.stop();
    }
  });
});

describe("stopping the gateway", () => {
  it("stops within a few seconds while 20 heavy queries run or wait", async () => {
    const g = await startGateway(files("timeoutMs: 60000"));
    const queries = Array.from({ length: 20 }, () => post(g, { sql: HEAVY }).then((r) => r.status, () => "closed"));
    // every one in (a loaded machine sends 20 requests slowly): one running, the others waiting for its slot
    await waitFor(() => historyLoad(g).running >= 1 && historyLoad(g).running + historyLoad(g).queued === 20, "20 heavy queries running or waiting");
    const started = performance.now();
    let drainedMs = Infinity;
    const drained = waitFor(() => historyLoad(g).running + historyLoad(g).queued === 0, "the queries interrupted and refused", 30_000, 10).then(() => (drainedMs = performance.now() - started));
    await g.stop();
    const stoppedMs = performance.now() - started;
    await drained;
    // the running query interrupted (DuckDB lets go in ~0.3 s), not given up on after the drain's 5 s
    expect(drainedMs).toBeLessThan(4000);
    // the whole stop (drivers, the log's close) does not wait for the queries' 60 s deadline
    expect(stoppedMs).toBeLessThan(10_000);
    // each is answered 503 (refused or interrupted as the gateway stops) before HTTP closes
    expect(await Promise.all(queries)).toEqual(Array.from({ length: 20 }, () => 503));
  });
});

const historyLoad = (g: TestGateway) => historyOf(g.gw.ctx)?.engine.load ?? { running: 0, queued: 0, limit: 0, maxQueued: 0 };

describe("SIGTERM", () => {
  it("ends the gateway process within a few seconds while 20 heavy queries run or wait, its frames committed", async () => {
    const tmp = tempDir();
    const f = files("timeoutMs: 60000");
    writeConfig(join(tmp.path, "config"), {
      ...f,
      "gateway.yml": `${f["gateway.yml"]}dataDir: ${join(tmp.path, "data")}\nhttp: { host: 127.0.0.1, port: 0 }\nopcua: { enabled: false }\nmodbusSlave: { enabled: false }\n`,
    });
    const { child, url } = await spawnGateway(join(tmp.path, "config"), { logLevel: "silent" });
    try {
      const g = { url } as TestGateway;
      const queries = Array.from({ length: 20 }, () => post(g, { sql: HEAVY }).then((r) => r.status, () => "closed"));
      // the simulator has committed frames and the queries are in
      await waitFor(async () => {
        const r = await post(g, { sql: `SELECT count(*) FROM data WHERE tag = 'load/count'`, timeoutMs: 100 }).catch(() => null);
        return r?.status === 429 || r?.status === 408;
      }, "the queries running and waiting");
      const started = performance.now();
      const code = await child.stop("SIGTERM");
      // not the queries' 60 s deadline: drained at once, then the process's own stop (a loaded machine's margin)
      expect(performance.now() - started).toBeLessThan(10_000);
      expect(code).toBe(0);
      expect((await Promise.all(queries)).every((s) => s === 503 || s === "closed")).toBe(true);
      // reopened: the simulator's counter is in the log, gapless
      const log = await EventLog.open({ path: join(tmp.path, "data", "log.duckdb") });
      try {
        const values: number[] = [];
        // Good readings only: the stop marks the tag Bad with one more frame (the quality model)
        for await (const page of log.pages({ from: 1 })) {
          for (const fr of page) if (fr.kind === "data" && fr.tag === "load/count" && fr.quality === 0) values.push(Number(fr.value));
        }
        expect(values.length).toBeGreaterThan(10);
        expect(values).toEqual(Array.from({ length: values.length }, (_, i) => values[0]! + i));
      } finally {
        await log.close();
      }
    } finally {
      await child.stop("SIGKILL");
      tmp.cleanup();
    }
  });
});
