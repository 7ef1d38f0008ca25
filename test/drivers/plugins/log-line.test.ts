// A plugin's log line is cut at 4096 bytes of UTF-8 (not characters), never inside a character.
import { describe, expect, it } from "bun:test";
import { cutLogLine, LOG_LINE_MAX } from "../../../drivers/plugins/protocol.ts";

const bytes = (s: string) => new TextEncoder().encode(s).length;

describe("plugin log lines", () => {
  it("keeps a line of 4096 bytes whole and cuts a longer one to 4096 bytes", () => {
    expect(cutLogLine("a".repeat(LOG_LINE_MAX))).toBe("a".repeat(LOG_LINE_MAX));
    expect(bytes(cutLogLine("a".repeat(LOG_LINE_MAX + 10)))).toBe(LOG_LINE_MAX);
  });

  it("counts bytes, not characters: 3000 three-byte characters are cut to 1365 whole ones", () => {
    const cut = cutLogLine("€".repeat(3000));
    expect(cut).toBe("€".repeat(1365));
    expect(bytes(cut)).toBeLessThanOrEqual(LOG_LINE_MAX);
  });

  it("drops a character cut in the middle rather than leaving half of it", () => {
    const cut = cutLogLine(`${"a".repeat(LOG_LINE_MAX - 1)}€tail`);
    expect(cut).toBe("a".repeat(LOG_LINE_MAX - 1));
    expect(cut.includes("\uFFFD")).toBe(false);
  });
});
