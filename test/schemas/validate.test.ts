// parseWithSchema, the check the bridges and drivers run on their own gateway.yml sections: an error says
// what was expected in words (a union lists its alternatives), with the file and the path.
import { describe, expect, it } from "bun:test";
import { Type } from "@sinclair/typebox";
import { ConfigError } from "../../schemas/index.ts";
import { parseWithSchema } from "../../schemas/validate.ts";

const Users = Type.Object({ users: Type.Array(Type.Object({ name: Type.String(), rights: Type.Array(Type.Union([Type.Literal("read"), Type.Literal("write")])) })) });

describe("parseWithSchema", () => {
  it("names the alternatives of a union instead of 'Expected union value', with the file and path", () => {
    let err: unknown;
    try {
      parseWithSchema(Users, { users: [{ name: "op", rights: ["reed"] }] }, "gateway.yml", "opcua");
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).path).toBe("opcua.users[0].rights[0]");
    expect((err as Error).message).toContain(`Expected one of "read", "write"; got "reed"`);
    expect((err as Error).message).not.toContain("union value");
  });

  it("returns the value with defaults when it is valid", () => {
    expect(parseWithSchema(Users, { users: [{ name: "op", rights: ["read"] }] }, "gateway.yml")).toEqual({ users: [{ name: "op", rights: ["read"] }] });
  });
});
