// The config editor's diff: the same hunks as `diff -u`, and the redaction of a file's secrets for showing.
import { describe, expect, it } from "bun:test";
import { diffLines, unifiedDiff } from "../../schemas/text-diff.ts";
import { redactConfigText } from "../../schemas/redact.ts";

describe("unifiedDiff", () => {
  it("gives diff -u's hunks: a change and an addition far apart are two hunks with three lines of context", () => {
    const a = "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\nk\n";
    const b = "a\nB\nc\nd\ne\nf\ng\nh\ni\nj\nk\nl\n";
    // the output of `diff -u` (GNU diffutils) on these two texts, headers aside
    expect(unifiedDiff(a, b, "x.yml")).toBe("--- a/x.yml\n+++ b/x.yml\n@@ -1,5 +1,5 @@\n a\n-b\n+B\n c\n d\n e\n@@ -9,3 +9,4 @@\n i\n j\n k\n+l\n");
  });

  it("is empty for equal texts and counts from line 0 on an empty side", () => {
    expect(unifiedDiff("x\n", "x\n", "n")).toBe("");
    expect(unifiedDiff("", "x\n", "n")).toBe("--- a/n\n+++ b/n\n@@ -0,0 +1,1 @@\n+x\n");
  });

  it("finds the shortest edit script", () => {
    const ops = diffLines(["a", "b", "c", "a", "b", "b", "a"], ["c", "b", "a", "b", "a", "c"]);
    expect(ops.filter((o) => o.op !== " ").length).toBe(5); // Myers' paper's example: D = 5
    expect(ops.filter((o) => o.op !== "+").map((o) => o.text)).toEqual(["a", "b", "c", "a", "b", "b", "a"]);
    expect(ops.filter((o) => o.op !== "-").map((o) => o.text)).toEqual(["c", "b", "a", "b", "a", "c"]);
  });
});

describe("redactConfigText", () => {
  it("hides secret values in block and flow style and URL passwords, keeping file references, env names and ${VAR}", () => {
    const text = [
      'auth:\n  hs256Secret: "abc def"   # comment',
      "  hs256SecretFile: secret.txt",
      'opcua: { users: [{ name: bob, passwordHash: "$argon2id$v=19$x", rights: [write] }] }',
      'mqtt: { url: "mqtt://u:pw@host", password: hunter2, passwordEnv: MQTT_PW }',
      'x: { hs256Secret: "${EDGE_JWT_SECRET:-}" }',
      "",
    ].join("\n");
    expect(redactConfigText(text)).toBe(
      [
        'auth:\n  hs256Secret: "[redacted]"   # comment',
        "  hs256SecretFile: secret.txt",
        'opcua: { users: [{ name: bob, passwordHash: "[redacted]", rights: [write] }] }',
        'mqtt: { url: "mqtt://u:[redacted]@host", password: "[redacted]", passwordEnv: MQTT_PW }',
        'x: { hs256Secret: "${EDGE_JWT_SECRET:-}" }',
        "",
      ].join("\n"),
    );
  });
});
