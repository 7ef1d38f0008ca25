// Modbus carries no credentials: the slave turns a master's write into a command only when the master's
// address is in `modbusSlave.writeAllowlist`; otherwise exception 01 (illegal function) and nothing in the log.
import { afterEach, describe, expect, it } from "bun:test";
import { waitFor } from "../../helpers/index.ts";
import { exceptionOf, startSlave, type SlaveHarness } from "./harness.ts";

const TAGS = [
  { tag: "t/sp", driver: "plc", type: "float32", access: "RW" },
  { tag: "t/pump", driver: "plc", type: "bool", access: "RW" },
];
const MAP = [
  { tag: "t/sp", area: "holding", address: 0 },
  { tag: "t/pump", area: "coil", address: 0 },
];

let h: SlaveHarness | null = null;
afterEach(async () => {
  await h?.stop();
  h = null;
});

/** Every write function code the slave serves, each expected to fail with a Modbus exception. */
async function everyWriteRefused(s: SlaveHarness): Promise<(number | undefined)[]> {
  const m = await s.master();
  return [
    await exceptionOf(m.writeRegister(0, 1)),
    await exceptionOf(m.writeRegisters(0, [0x42f6, 0])),
    await exceptionOf(m.writeCoil(0, true)),
    await exceptionOf(m.writeCoils(0, [true])),
  ];
}

describe("modbusSlave.writeAllowlist", () => {
  it("refuses every write with exception 01 when writeAllowlist is not set, and logs no command", async () => {
    h = await startSlave({ tags: TAGS, slave: { map: MAP, writeAllowlist: undefined }, initial: { "t/sp": 1, "t/pump": false } });
    expect(await everyWriteRefused(h)).toEqual([1, 1, 1, 1]);
    expect(h.slave.stats.writesDenied).toBe(4);
    expect(h.commands).toHaveLength(0);
    // reads stay served
    const m = await h.master();
    expect((await m.readHoldingRegisters(0, 2)).data).toHaveLength(2);
  });

  it("refuses writes with exception 01 from a client outside the allowlist", async () => {
    h = await startSlave({ tags: TAGS, slave: { map: MAP, writeAllowlist: ["10.0.0.0/8", "192.0.2.77"] }, initial: { "t/sp": 1 } });
    expect(await everyWriteRefused(h)).toEqual([1, 1, 1, 1]);
    expect(h.commands).toHaveLength(0);
  });

  it("turns a write from an allowlisted client (CIDR match) into a command", async () => {
    h = await startSlave({ tags: TAGS, slave: { map: MAP, writeAllowlist: ["127.0.0.0/8"] }, initial: { "t/sp": 1 } });
    const m = await h.master();
    await m.writeCoil(0, true);
    const cmd = await waitFor(() => h!.commands.find((c) => c.tag === "t/pump"), "command in the log");
    expect(cmd).toMatchObject({ origin: "modbus", actor: "modbus:127.0.0.1", value: true });
    expect(h.slave.stats.writesDenied).toBe(0);
  });
});
