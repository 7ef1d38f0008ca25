// Quality through a protocol that has no quality field: a read touching a tag whose latest quality is
// Bad, or that was never read, answers exception 0B (gateway target device failed to respond) unless the
// map says `onBad: hold | zero`; Uncertain values are served. Real masters on loopback: modbus-serial,
// and Debian's mbpoll (a C master built on libmodbus) for the wire as SCADA tools see it.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { Quality } from "../../../schemas/index.ts";
import { waitFor } from "../../helpers/index.ts";
import { exceptionOf, startSlave, type SlaveHarness } from "./harness.ts";

const tag = (name: string, type = "int16") => ({ tag: name, driver: "plc", type, access: "R" });
const TAGS = ["q/good", "q/bad", "q/never", "q/unc", "q/recovers", "q/turns-bad", "q/hold", "q/zero", "q/hold-never"].map((t) => tag(t));
TAGS.push(tag("q/coil-bad", "bool"), tag("q/coil-good", "bool"));

const MAP = [
  { tag: "q/good", area: "holding", address: 0 },
  { tag: "q/bad", area: "holding", address: 1 },
  { tag: "q/never", area: "holding", address: 2 },
  { tag: "q/unc", area: "holding", address: 3 },
  { tag: "q/recovers", area: "holding", address: 4 },
  { tag: "q/turns-bad", area: "holding", address: 5 },
  { tag: "q/hold", area: "holding", address: 10, onBad: "hold" },
  { tag: "q/zero", area: "holding", address: 11, onBad: "zero" },
  { tag: "q/hold-never", area: "holding", address: 12, onBad: "hold" },
  { tag: "q/coil-bad", area: "coil", address: 0 },
  { tag: "q/coil-good", area: "coil", address: 1 },
];

const GATEWAY_TARGET_FAILED = 0x0b;

let h: SlaveHarness;
beforeAll(async () => {
  h = await startSlave({
    tags: TAGS,
    slave: { map: MAP },
    initial: { "q/good": 42, "q/bad": 7, "q/unc": 99, "q/recovers": 1, "q/turns-bad": 5, "q/hold": 55, "q/zero": 66, "q/coil-bad": true, "q/coil-good": true },
    initialQuality: {
      "q/bad": Quality.Bad_CommunicationError,
      "q/unc": Quality.Uncertain_LastUsableValue,
      "q/recovers": Quality.Bad_Timeout,
      "q/coil-bad": Quality.Bad_NotConnected,
    },
  });
});
afterAll(async () => {
  await h?.stop();
});

describe("default (onBad: exception)", () => {
  it("answers exception 0B to a read of a Bad tag and serves the Good tag beside it", async () => {
    const m = await h.master();
    expect((await m.readHoldingRegisters(0, 1)).data).toEqual([42]);
    expect(await exceptionOf(m.readHoldingRegisters(1, 1))).toBe(GATEWAY_TARGET_FAILED);
    // a read whose range merely touches the Bad tag fails whole: SCADA must not take its 0 or old number as true
    expect(await exceptionOf(m.readHoldingRegisters(0, 2))).toBe(GATEWAY_TARGET_FAILED);
  });

  /** The register at `address` answers 0B now, and `value` once a Good reading of `tag` is in the log. */
  async function expectServedOnceGood(address: number, tag: string, value: number): Promise<void> {
    const m = await h.master();
    expect(await exceptionOf(m.readHoldingRegisters(address, 1))).toBe(GATEWAY_TARGET_FAILED);
    await h.publish({ [tag]: value });
    await waitFor(async () => (await m.readHoldingRegisters(address, 1)).data[0] === value, `${tag} served once Good`, 10_000);
  }

  it("answers 0B for a tag that was never read, and serves it from its first Good reading", async () => {
    await expectServedOnceGood(2, "q/never", 321);
  });

  it("serves an Uncertain (last usable value from a previous run) tag's value", async () => {
    const m = await h.master();
    expect((await m.readHoldingRegisters(3, 1)).data).toEqual([99]);
  });

  it("serves a Bad tag again once a Good reading arrives", async () => {
    await expectServedOnceGood(4, "q/recovers", 2);
  });

  it("answers 0B from the moment a Bad frame follows a Good one in the live tail", async () => {
    const m = await h.master();
    expect((await m.readHoldingRegisters(5, 1)).data).toEqual([5]);
    await h.publish({ "q/turns-bad": null }, Quality.Bad_CommunicationError);
    await waitFor(async () => (await exceptionOf(m.readHoldingRegisters(5, 1))) === GATEWAY_TARGET_FAILED, "0B after the Bad frame", 10_000);
  });

  it("answers 0B to a coil read touching a Bad tag and serves a Good coil", async () => {
    const m = await h.master();
    expect(await exceptionOf(m.readCoils(0, 2))).toBe(GATEWAY_TARGET_FAILED);
    expect((await m.readCoils(1, 1)).data[0]).toBe(true);
  });

  it("counts the Bad and never-read entries in status()", () => {
    // q/bad, q/coil-bad, q/turns-bad (Bad) and q/hold-never (never read); q/never and q/recovers got Good readings above
    expect(h.slave.status().badEntries).toBe(4);
  });
});

describe("onBad: hold and zero", () => {
  it("hold: serves the last usable value of a tag that turned Bad", async () => {
    const m = await h.master();
    await h.publish({ "q/hold": null }, Quality.Bad_Timeout);
    await waitFor(() => h.slave.image.quality[MAP.findIndex((e) => e.tag === "q/hold")] === Quality.Bad_Timeout, "Bad frame applied", 10_000);
    expect((await m.readHoldingRegisters(10, 1)).data).toEqual([55]);
  });

  it("zero: serves 0 for a tag that turned Bad", async () => {
    const m = await h.master();
    expect((await m.readHoldingRegisters(11, 1)).data).toEqual([66]);
    await h.publish({ "q/zero": 66 }, Quality.Bad_Timeout);
    await waitFor(async () => (await m.readHoldingRegisters(11, 1)).data[0] === 0, "zero served", 10_000);
  });

  it("hold: serves 0 for a tag that was never read (there is no value to hold)", async () => {
    const m = await h.master();
    expect((await m.readHoldingRegisters(12, 1)).data).toEqual([0]);
  });
});

describe("section-level onBad", () => {
  it("applies the section's onBad to every entry and lets an entry override it", async () => {
    const h2 = await startSlave({
      tags: [tag("s/a"), tag("s/b")],
      slave: { onBad: "zero", map: [{ tag: "s/a", area: "holding", address: 0 }, { tag: "s/b", area: "holding", address: 1, onBad: "exception" }] },
      initial: { "s/a": 12, "s/b": 34 },
      initialQuality: { "s/a": Quality.Bad_NotConnected, "s/b": Quality.Bad_NotConnected },
    });
    try {
      const m = await h2.master();
      expect((await m.readHoldingRegisters(0, 1)).data).toEqual([0]);
      expect(await exceptionOf(m.readHoldingRegisters(1, 1))).toBe(GATEWAY_TARGET_FAILED);
    } finally {
      await h2.stop();
    }
  });
});

describe("mbpoll (Debian's libmodbus master)", () => {
  const mbpoll = Bun.which("mbpoll");
  // async spawn: the slave answers from this process's event loop
  const poll = async (ref: number) => {
    // -0: zero-based references like the map; -1: poll once; -o: timeout in seconds
    const p = Bun.spawn([mbpoll!, "-m", "tcp", "-p", String(h.port), "-a", "1", "-t", "4", "-0", "-r", String(ref), "-c", "1", "-1", "-o", "2", "127.0.0.1"], { stdout: "pipe", stderr: "pipe" });
    const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    return out + err;
  };

  it.skipIf(!mbpoll)("reads the Good tag's value and gets 'Target device failed to respond' (exception 0B) for the Bad one", async () => {
    expect(await poll(0)).toMatch(/\[0\]:\s+42\b/);
    // libmodbus's text for exception 0B (EMBXGTAR)
    expect(await poll(1)).toMatch(/read output \(holding\) register failed: Target device failed to respond/i);
  });
});
