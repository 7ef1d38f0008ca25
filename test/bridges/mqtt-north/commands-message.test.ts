// The checks of an MQTT command message before anything is recorded (bridges/mqtt-north/command-message.ts):
// publication time required, life bounded and counted from publication, retained refused, ids scoped.
import { describe, expect, it } from "bun:test";
import { CommandRefused, commandExpiry, parseCommand, scopedCommandId } from "../../../schemas/command-message.ts";

const limits = { ttlMs: 30_000, maxTtlMs: 60_000 };
const now = 1_800_000_000_000;
const json = (o: unknown) => Buffer.from(typeof o === "string" ? o : JSON.stringify(o));
const refusal = (f: () => unknown): CommandRefused => {
  try {
    f();
  } catch (e) {
    if (e instanceof CommandRefused) return e;
    throw e;
  }
  throw new Error("not refused");
};

describe("parseCommand", () => {
  it("refuses a retained message with refused_retained, keeping the client's id for the answer", () => {
    const e = refusal(() => parseCommand(json({ id: "r1", value: 1, ts: now }), { retain: true }));
    expect([e.code, e.id]).toEqual(["refused_retained", "r1"]);
  });

  it("requires ts or expiresAt, and refuses non-finite, negative or non-number times naming the field", () => {
    expect(refusal(() => parseCommand(json({ value: 1 }), {})).message).toStartWith("ts:");
    expect(refusal(() => parseCommand(json('{"value":1,"ts":1e400}'), {})).message).toStartWith("ts:");
    expect(refusal(() => parseCommand(json(`{"value":1,"ts":${now},"ttlMs":1e400}`), {})).message).toStartWith("ttlMs:");
    expect(refusal(() => parseCommand(json({ value: 1, expiresAt: "tomorrow" }), {})).message).toStartWith("expiresAt:");
    expect(refusal(() => parseCommand(json({ value: 1, ts: now, ttlMs: 0 }), {})).message).toStartWith("ttlMs:");
    expect(refusal(() => parseCommand(json({ ts: now }), {})).message).toStartWith("value:");
  });

  it("takes the token from user property token, then authorization (Bearer), then the payload", () => {
    const body = json({ value: 1, ts: now, token: "from-payload" });
    expect(parseCommand(body, { properties: { userProperties: { token: "from-prop" } } }).token).toBe("from-prop");
    expect(parseCommand(body, { properties: { userProperties: { authorization: "Bearer abc.def.ghi" } } }).token).toBe("abc.def.ghi");
    expect(parseCommand(body, {}).token).toBe("from-payload");
  });
});

describe("commandExpiry", () => {
  it("counts the life from the publication time, not from receipt", () => {
    expect(commandExpiry({ ts: now - 14_000, ttlMs: 3000, expiresAt: undefined }, {}, now, limits)).toBe(now - 11_000);
  });

  it("bounds the life by maxTtlMs from publication whatever ttlMs or expiresAt ask", () => {
    expect(commandExpiry({ ts: now, ttlMs: 86_400_000, expiresAt: undefined }, {}, now, limits)).toBe(now + 60_000);
    expect(commandExpiry({ ts: undefined, ttlMs: undefined, expiresAt: now + 86_400_000 }, {}, now, limits)).toBe(now + 60_000);
    // an expiresAt alone is the life asked for (not cut to the default ttlMs)
    expect(commandExpiry({ ts: undefined, ttlMs: undefined, expiresAt: now + 45_000 }, {}, now, limits)).toBe(now + 45_000);
  });

  it("counts a publication time in the future as now", () => {
    expect(commandExpiry({ ts: now + 3_600_000, ttlMs: 60_000, expiresAt: undefined }, {}, now, limits)).toBe(now + 60_000);
  });

  it("takes the earliest of publication + ttl, expiresAt and the MQTT 5 message expiry interval left", () => {
    expect(commandExpiry({ ts: now, ttlMs: 20_000, expiresAt: now + 10_000 }, {}, now, limits)).toBe(now + 10_000);
    expect(commandExpiry({ ts: now, ttlMs: 20_000, expiresAt: undefined }, { properties: { messageExpiryInterval: 2 } }, now, limits)).toBe(now + 2000);
  });
});

describe("scopedCommandId", () => {
  it("gives the same id for the same tenant, actor and client id, and different ids across tenants or actors", () => {
    const a = scopedCommandId("acme", "mqtt:alice", "c-1");
    expect(scopedCommandId("acme", "mqtt:alice", "c-1")).toBe(a);
    expect(scopedCommandId("globex", "mqtt:alice", "c-1")).not.toBe(a);
    expect(scopedCommandId("acme", "mqtt:bob", "c-1")).not.toBe(a);
  });
});
