// Quality in words and colour, from the OPC UA StatusCode the frames carry (the gateway's own table in
// schemas/quality.ts, shared at build time) or from its name as the REST API gives it.
import { qualityCode, qualityName } from "#schemas/quality.ts";

export type Severity = "good" | "uncertain" | "bad";

export interface QualityWords {
  severity: Severity;
  /** "Good", "Bad: communication error" */
  words: string;
  /** the StatusCode name, for the tooltip */
  name: string;
}

const cache = new Map<number | string, QualityWords>();

export function qualityWords(q: number | string): QualityWords {
  let w = cache.get(q);
  if (w) return w;
  const code = typeof q === "number" ? q >>> 0 : (qualityCode(q.replace(/ \(0x[0-9a-f]+\)$/, "")) ?? 0x80000000);
  const name = typeof q === "number" ? qualityName(code) : q;
  const severity: Severity = code >>> 30 === 0 ? "good" : code >>> 30 === 1 ? "uncertain" : "bad";
  // Bad_CommunicationError -> "Bad: communication error"
  const [head, rest] = name.replace(/ \(0x[0-9a-f]+\)$/, "").split("_", 2);
  const reason = rest ? rest.replace(/([a-z0-9])([A-Z])/g, "$1 $2").toLowerCase() : "";
  w = { severity, words: reason ? `${head}: ${reason}` : (head ?? name), name };
  cache.set(q, w);
  return w;
}
