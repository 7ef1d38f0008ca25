// The paths a gateway.yml edit changed, named in the reload's "applies after a restart" warning.
import { describe, expect, it } from "bun:test";
import { changedPaths } from "../../server/reload.ts";

describe("changedPaths", () => {
  it("names each changed leaf by its path, an added or removed key too, never a value", () => {
    const running = { http: { port: 8080, host: "127.0.0.1" }, mqtt: { enabled: true, cert: "a.pem", password: "s3cret" }, nats: { servers: ["nats://a"] } };
    const edited = { http: { port: 8081, host: "127.0.0.1" }, mqtt: { enabled: true, cert: "b.pem", password: "other" }, nats: { servers: ["nats://b"] }, dataDir: "/d" };
    const paths = changedPaths(running, edited);
    expect(paths).toEqual(["http.port", "mqtt.cert", "mqtt.password", "nats.servers", "dataDir"]);
    expect(paths.join(" ")).not.toContain("s3cret");
    expect(paths.join(" ")).not.toContain("other");
  });

  it("is empty for equal sections", () => {
    expect(changedPaths({ a: { b: [1, 2] } }, { a: { b: [1, 2] } })).toEqual([]);
  });
});
