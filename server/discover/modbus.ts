// `edgectl discover modbus <tcp:// | serial:// | rtu+tcp:// endpoint> --units 1-10`: probes which units answer and which
// holding/input register ranges they let read, politely (one request at a time, at most `rate` per
// second, up to `maxAddress`, at most `maxRequests`), and drafts a register map: one uint16 tag per
// readable register, `unit<N>/<area>/<addr>`, grouped in contiguous ranges. Reads go in blocks that are
// halved on exception 02/03 (illegal address/value) until the readable part is found.
// Uses the driver's links (drivers/modbus linkOf): its TCP connection, or on serial:// and rtu+tcp:// its
// RTU line (one request at a time, the inter-frame silence, CRC checks) and nothing else of the driver.
import { EndpointPool, parseEndpointUrl } from "../../drivers/endpoint.ts";
import { linkOf, RtuFrameError } from "../../drivers/modbus/index.ts";
import { ModbusConnectionError, ModbusExceptionError, ModbusTimeoutError, type ModbusLink } from "../../drivers/modbus/client.ts";
import { delay } from "../../storage/time.ts";
import { DiscoverError, DiscoverOptionError, renderFiles, type DiscoveredFiles, type FragmentLine } from "./files.ts";

export type ProbeArea = "holding" | "input";

export interface ModbusDiscoverOptions {
  url: string;
  units: readonly number[];
  areas?: readonly ProbeArea[];
  /** highest register address probed (default 999) */
  maxAddress?: number;
  /** registers per block read (default 125, the most Modbus allows) */
  blockSize?: number;
  /** requests per second, at most (default 20) */
  rate?: number;
  /** per request (default 1000 ms): a unit that does not answer within it is absent */
  timeoutMs?: number;
  /** requests in all, at most (default 5000); the draft says when the bound cut the probe */
  maxRequests?: number;
  driverId?: string;
  /** aborted: the probe stops after the request in flight and drafts what it found */
  signal?: AbortSignal;
  /** false: serial:// and rtu+tcp:// refused (the API: the gateway's own drivers may poll that line) */
  serialLines?: boolean;
}

export interface Range {
  area: ProbeArea;
  start: number;
  end: number;
}

export interface UnitFinding {
  unitId: number;
  answered: boolean;
  /** why a unit counts as absent */
  reason?: string;
  ranges: Range[];
}

export interface ModbusDiscovery {
  files: DiscoveredFiles;
  units: UnitFinding[];
  tags: number;
  requests: number;
  truncated: boolean;
}

/** "1-10,12" -> [1..10, 12]; refuses what is not a unit id (0-255). `name`: the option as the user wrote it (the CLI's --units, the API's units field). */
export function parseUnits(spec: string, name = "--units"): number[] {
  const out = new Set<number>();
  for (const part of spec.split(",").map((s) => s.trim())) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    const lo = m ? Number(m[1]) : NaN;
    const hi = m?.[2] !== undefined ? Number(m[2]) : lo;
    if (!m || lo > 255 || hi > 255 || lo > hi) throw new DiscoverOptionError(`${name}: '${part}' is not a unit id or range of unit ids (0-255, e.g. 1-10,12)`, "units");
    for (let u = lo; u <= hi; u++) out.add(u);
  }
  return [...out];
}

class BudgetSpent extends Error {
  override name = "BudgetSpent";
}

/** One request at a time, spaced by the rate limit, counted against the budget. */
class PoliteLink {
  requests = 0;
  private lastAt = 0;

  constructor(
    private readonly conn: ModbusLink,
    private readonly gapMs: number,
    private readonly maxRequests: number,
    private readonly signal: AbortSignal | undefined,
  ) {}

  async read(unitId: number, area: ProbeArea, start: number, count: number): Promise<void> {
    // the time limit (signal) cuts the probe as the request budget does: what was found is kept
    if (this.signal?.aborted || this.requests >= this.maxRequests) throw new BudgetSpent();
    const wait = this.lastAt + this.gapMs - Date.now();
    if (wait > 0) await delay(wait, this.signal);
    if (this.signal?.aborted) throw new BudgetSpent();
    this.requests++;
    try {
      await this.conn.readRegisters(unitId, area, start, count);
    } finally {
      this.lastAt = Date.now();
    }
  }
}

/** Exceptions that mean "not this address/count": the block is narrowed. */
const NARROWS = new Set([2, 3]);
/** Exceptions of a gateway that found no such unit behind it. */
const ABSENT = new Set([10, 11]);

/**
 * Whether the unit answers at all: any answer counts, an exception too, except a gateway's "no such
 * target". A garbled answer on a serial line (CRC, another unit's frame) is no answer from this unit.
 */
async function answers(link: PoliteLink, unitId: number): Promise<string | null> {
  try {
    await link.read(unitId, "holding", 0, 1);
    return null;
  } catch (e) {
    if (e instanceof ModbusExceptionError) return ABSENT.has(e.code) ? e.message : null;
    if (e instanceof ModbusTimeoutError) return e.message;
    if (e instanceof RtuFrameError) return `a garbled answer: ${e.message}`;
    throw e;
  }
}

/** The readable registers of [start, start+count): the block if it reads, else its halves, down to one register. */
async function readable(link: PoliteLink, unitId: number, area: ProbeArea, start: number, count: number, out: number[]): Promise<void> {
  try {
    await link.read(unitId, area, start, count);
    for (let a = start; a < start + count; a++) out.push(a);
  } catch (e) {
    if (!(e instanceof ModbusExceptionError) || !NARROWS.has(e.code)) {
      if (e instanceof ModbusExceptionError || e instanceof ModbusTimeoutError || e instanceof RtuFrameError) return; // not readable as far as a probe can tell
      throw e;
    }
    if (count === 1) return;
    const half = Math.ceil(count / 2);
    await readable(link, unitId, area, start, half, out);
    await readable(link, unitId, area, start + half, count - half, out);
  }
}

/** Sorted addresses -> contiguous ranges. */
export function toRanges(area: ProbeArea, addrs: readonly number[]): Range[] {
  const ranges: Range[] = [];
  for (const a of addrs) {
    const last = ranges.at(-1);
    if (last && a === last.end + 1) last.end = a;
    else ranges.push({ area, start: a, end: a });
  }
  return ranges;
}

/** Fills `u` as the probe goes, so that a probe cut by a limit keeps what it had found. */
async function probeUnit(link: PoliteLink, u: UnitFinding, o: Required<Pick<ModbusDiscoverOptions, "areas" | "maxAddress" | "blockSize">>): Promise<void> {
  u.reason = "not probed: the request or time limit came first";
  const reason = await answers(link, u.unitId);
  if (reason) return void (u.reason = reason);
  u.answered = true;
  delete u.reason;
  for (const area of o.areas) {
    const addrs: number[] = [];
    try {
      for (let start = 0; start <= o.maxAddress; start += o.blockSize) {
        await readable(link, u.unitId, area, start, Math.min(o.blockSize, o.maxAddress - start + 1), addrs);
      }
    } finally {
      u.ranges.push(...toRanges(area, addrs));
    }
  }
}

/** Schemes probed: plain TCP and RTU (tls+tcp:// needs certificate files, which the probe takes no options for). */
const PROBED = ["tcp", "serial", "rtu+tcp"];

function checkOptions(o: ModbusDiscoverOptions, timeoutMs: number): () => Promise<ModbusLink> {
  const ep = (() => {
    try {
      return parseEndpointUrl(o.url);
    } catch (e) {
      throw new DiscoverOptionError(`discover modbus: ${(e as Error).message}`);
    }
  })();
  if (o.serialLines === false && ep.scheme !== "tcp") {
    // two masters on one RS-485 line garble each other's frames: probe a line no gateway polls, with edgectl
    throw new DiscoverOptionError(`discover modbus: '${o.url}': serial lines are probed by 'edgectl discover modbus' while no gateway polls them, not through the API`, "url");
  }
  if (!PROBED.includes(ep.scheme)) throw new DiscoverOptionError(`discover modbus: '${o.url}': only tcp://, serial:// and rtu+tcp:// endpoints are probed (the scheme is ${ep.scheme})`);
  if (!o.units.length) throw new DiscoverOptionError("discover modbus: no unit id to probe", "units");
  const bad = (what: string, v: number | undefined, lo: number, hi: number) => {
    if (v !== undefined && !(Number.isInteger(v) && v >= lo && v <= hi)) throw new DiscoverOptionError(`discover modbus: ${what} must be an integer from ${lo} to ${hi} (got ${v})`);
  };
  bad("--max-address", o.maxAddress, 0, 65535);
  bad("--block", o.blockSize, 1, 125);
  bad("--timeout-ms", o.timeoutMs, 1, 60_000);
  bad("--max-requests", o.maxRequests, 1, 1_000_000);
  if (o.rate !== undefined && !(o.rate > 0)) throw new DiscoverOptionError(`discover modbus: --rate must be a positive number of requests per second (got ${o.rate})`);
  const link = linkOf({ ...ep, id: "discover", timeoutMs, pool: new EndpointPool() });
  if (typeof link === "string") throw new DiscoverOptionError(`discover modbus: '${o.url}': ${link}`);
  return link.open;
}

function draft(o: ModbusDiscoverOptions, driverId: string, units: UnitFinding[], timeoutMs: number, note: string): { files: DiscoveredFiles; tags: number } {
  const lines: FragmentLine[] = [];
  for (const u of units) {
    if (!u.answered) {
      lines.push({ comment: `unit ${u.unitId}: no answer (${u.reason})` });
      continue;
    }
    if (!u.ranges.length) lines.push({ comment: `unit ${u.unitId}: answers, no readable register found` });
    for (const r of u.ranges) {
      lines.push({ comment: `unit ${u.unitId} ${r.area} ${r.start}-${r.end} (${r.end - r.start + 1} registers)` });
      for (let a = r.start; a <= r.end; a++) {
        lines.push({ tag: { tag: `unit${u.unitId}/${r.area}/${a}`, driver: driverId, type: "uint16", access: "R", address: { area: r.area, address: a, unitId: u.unitId } } });
      }
    }
  }
  const tags = lines.filter((l) => "tag" in l).length;
  const header = `draft map probed from ${o.url} on ${new Date().toISOString()}: ${units.filter((u) => u.answered).length} of ${units.length} units answered, ${tags} registers${note}; types are guesses (uint16): edit them`;
  const files = renderFiles({
    header,
    endpointId: driverId,
    endpoint: { url: o.url, timeoutMs },
    driver: { id: driverId, type: "modbus", endpoint: driverId, enabled: true, config: { unitId: units.find((u) => u.answered)?.unitId ?? 1, intervalMs: 1000 } },
    lines,
  });
  return { files, tags };
}

/** Probes the units and drafts the three files. Throws DiscoverError when the endpoint cannot be reached. */
export async function discoverModbus(o: ModbusDiscoverOptions): Promise<ModbusDiscovery> {
  const timeoutMs = o.timeoutMs ?? 1000;
  const open = checkOptions(o, timeoutMs);
  const driverId = o.driverId ?? "modbus1";
  const settings = { areas: o.areas ?? ["holding"], maxAddress: o.maxAddress ?? 999, blockSize: o.blockSize ?? 125 };
  const conn = await open();
  const link = new PoliteLink(conn, 1000 / (o.rate ?? 20), o.maxRequests ?? 5000, o.signal);
  const units: UnitFinding[] = [];
  let truncated = false;
  try {
    for (const unitId of o.units) {
      const u: UnitFinding = { unitId, answered: false, ranges: [] };
      units.push(u);
      await probeUnit(link, u, settings);
    }
  } catch (e) {
    if (e instanceof BudgetSpent) truncated = true;
    else if (e instanceof ModbusConnectionError) throw new DiscoverError(`discover modbus: ${o.url}: ${e.message}`);
    else throw e;
  } finally {
    conn.close();
  }
  const { files, tags } = draft(o, driverId, units, timeoutMs, truncated ? `, probe cut after ${link.requests} requests (request or time limit)` : "");
  return { files, units, tags, requests: link.requests, truncated };
}
