// The committed JSON Schema files equal what schemas/emit.ts generates now (they cannot drift from
// the TypeBox schemas), and the frame validators refuse malformed frames.
import { describe, expect, it } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { TypeCompiler } from "@sinclair/typebox/compiler";
import { AckFrame, CmdFrame, DataFrame, EventFrame, Frame } from "../../schemas/index.ts";
import { JSON_SCHEMA_DIR, jsonSchemaTexts } from "../../schemas/emit.ts";

describe("JSON Schema files", () => {
  it("are committed exactly as `bun schemas/emit.ts` generates them now", () => {
    const generated = jsonSchemaTexts();
    expect(readdirSync(JSON_SCHEMA_DIR).sort()).toEqual(Object.keys(generated).sort());
    for (const [name, text] of Object.entries(generated)) {
      // a failure here means a schema changed: run `bun schemas/emit.ts` and commit schemas/json/
      expect({ name, text: readFileSync(join(JSON_SCHEMA_DIR, name), "utf8") }).toEqual({ name, text });
    }
  });

  it("are plain JSON Schema: no TypeBox-only bigint type", () => {
    for (const text of Object.values(jsonSchemaTexts())) expect(text).not.toContain('"type": "bigint"');
    const variables = JSON.parse(jsonSchemaTexts()["variables.schema.json"]!);
    expect(variables.properties.tags.items.properties.type.anyOf.map((x: { const: string }) => x.const)).toContain("float32");
  });
});

describe("frame validators", () => {
  const data = TypeCompiler.Compile(DataFrame);
  const good = { kind: "data", tag: "line1/temp", value: 21.5, ts: 1_700_000_000_000_000, quality: 0, source: "plc1" };

  it("accept a well-formed data frame, 64-bit integers as bigint", () => {
    expect(data.Check(good)).toBe(true);
    expect(data.Check({ ...good, value: 9007199254740993n })).toBe(true);
    expect(data.Check({ ...good, value: null })).toBe(true);
  });

  it("refuse a data frame without tag, naming the field", () => {
    const { tag: _tag, ...noTag } = good;
    expect(data.Check(noTag)).toBe(false);
    expect([...data.Errors(noTag)].map((e) => e.path)).toContain("/tag");
    expect(data.Check({ ...good, tag: "" })).toBe(false);
  });

  it("refuse a quality that is not a uint32 StatusCode and a value of the wrong type", () => {
    expect(data.Check({ ...good, quality: -1 })).toBe(false);
    expect(data.Check({ ...good, quality: 0x1_0000_0000 })).toBe(false);
    expect(data.Check({ ...good, value: { x: 1 } })).toBe(false);
  });

  it("refuse a command from an unknown origin, and an ack without status or with an unknown code", () => {
    const cmd = { kind: "cmd", id: "c1", tag: "a", value: 1, origin: "rest", actor: "alice", tenant: "t", ts: 1, expiresAt: 2 };
    expect(TypeCompiler.Compile(CmdFrame).Check(cmd)).toBe(true);
    expect(TypeCompiler.Compile(CmdFrame).Check({ ...cmd, origin: "telnet" })).toBe(false);
    const ack = { kind: "ack", cmd: "c1", tag: "a", ok: true, status: "ok", code: "ok", ts: 3, source: "plc1" };
    expect(TypeCompiler.Compile(AckFrame).Check(ack)).toBe(true);
    const { status: _s, ...noStatus } = ack;
    expect(TypeCompiler.Compile(AckFrame).Check(noStatus)).toBe(false);
    expect(TypeCompiler.Compile(AckFrame).Check({ ...ack, code: "maybe" })).toBe(false);
  });

  it("tell frame kinds apart: an event is not a data frame", () => {
    const ev = { kind: "event", type: "driver.state", source: "plc1", ts: 1, data: { state: "Active" } };
    expect(TypeCompiler.Compile(EventFrame).Check(ev)).toBe(true);
    expect(data.Check(ev)).toBe(false);
    expect(TypeCompiler.Compile(Frame).Check(ev)).toBe(true);
    expect(TypeCompiler.Compile(Frame).Check({ ...ev, kind: "gossip" })).toBe(false);
  });
});
