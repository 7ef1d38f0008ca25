// The host API a rule sees, and how its outputs come back: the prelude evaluated in every rule's context
// before its module (sendCommand, setTag, raiseAlarm, clearAlarm, log, state, and the frozen `__host` the
// sandbox calls), and the parsing of what the prelude collected. Pure text and data: no QuickJS handle here.

/** What the rule asked for, in the order asked; `i` is the index of the message in its batch (-1: timer). */
export type SandboxOutput =
  | { type: "cmd"; i: number; tag: string; value: unknown }
  | { type: "set"; i: number; tag: string; value: unknown }
  | { type: "raise"; i: number; name: string; priority: unknown; message: unknown }
  | { type: "clear"; i: number; name: string }
  | { type: "log"; i: number; level: "debug" | "info" | "warn" | "error"; text: string };

/** A log line's cap (the owner's plugin design) */
export const LOG_LINE_BYTES = 4096;

// Runs once in a fresh context before the rule's module. Everything the host calls lives in one frozen,
// non-configurable object `__host`: the rule may break its own API but cannot redirect the host's calls.
export const PRELUDE = String.raw`
(() => {
  const stringify = JSON.stringify, parse = JSON.parse, freeze = Object.freeze, define = Object.defineProperty, now = Date.now;
  const MAX = __MAX_OUTPUTS__, CAP = ${LOG_LINE_BYTES};
  let out = [], idx = -1, cols = new Float64Array(0), extras = [], n = 0, names = [], onMessage = null, onTimer = null, writes = new Set(), sets = new Set();
  const push = (e) => { if (out.length >= MAX) throw new Error("a run may produce at most " + MAX + " outputs"); out.push(e); };
  const big = (_k, v) => (typeof v === "bigint" ? v.toString() : v);
  const text = (args) => { let s = args.map((a) => (typeof a === "string" ? a : stringify(a, big))).join(" "); return s.length > CAP ? s.slice(0, CAP) : s; };
  globalThis.sendCommand = (tag, value) => {
    if (!writes.has(tag)) throw new Error("sendCommand: tag '" + tag + "' is not in this rule's meta.writes");
    push(["cmd", idx, tag, value]);
  };
  globalThis.setTag = (tag, value) => {
    if (!sets.has(tag)) throw new Error("setTag: tag '" + tag + "' is not in this rule's meta.sets");
    push(["set", idx, tag, value]);
  };
  globalThis.raiseAlarm = (name, opts) => push(["raise", idx, String(name), opts?.priority ?? "medium", opts?.message ?? String(name)]);
  globalThis.clearAlarm = (name) => push(["clear", idx, String(name)]);
  const level = (l) => (...args) => push(["log", idx, l, text(args)]);
  globalThis.log = freeze({ debug: level("debug"), info: level("info"), warn: level("warn"), error: level("error") });
  globalThis.state = {};
  define(globalThis, "__host", { enumerable: false, configurable: false, writable: false, value: freeze({
    init(stateJson, writesJson, setsJson) { globalThis.state = parse(stateJson); writes = new Set(parse(writesJson)); sets = new Set(parse(setsJson)); },
    bind(ns) { onMessage = typeof ns.onMessage === "function" ? ns.onMessage : null; onTimer = typeof ns.onTimer === "function" ? ns.onTimer : null;
      return stringify({ meta: ns.meta, onMessage: !!onMessage, onTimer: !!onTimer }, big); },
    // a batch arrives as columns (tag id, kind, value, quality, ts per message): parsing JSON in QuickJS
    // cost more than the rule itself; kind 0 number, 1 true, 2 false, 3 null, 4 extras[value]
    load(buf, extrasJson, newNames) {
      cols = new Float64Array(buf); n = cols.length / 5; idx = -1;
      extras = extrasJson ? parse(extrasJson) : [];
      if (newNames) for (const t of parse(newNames)) names.push(t);
    },
    // messages run in slices: a slice returns to the host once it has used a tenth of the limit, and
    // the host calls again with a fresh deadline, so every message has at least 90% of the limit to itself
    run(from, sliceMs) {
      if (!onMessage) return n;
      const start = now();
      for (let i = from; i < n; i++) {
        if (i > from && now() - start > sliceMs) return i;
        idx = i;
        const k = i * 5, kind = cols[k + 1];
        const value = kind === 0 ? cols[k + 2] : kind === 1 ? true : kind === 2 ? false : kind === 3 ? null : extras[cols[k + 2]];
        onMessage({ tag: names[cols[k]], value, quality: cols[k + 3], ts: cols[k + 4] });
      }
      idx = n;
      return n;
    },
    timer(now) { idx = -1; if (onTimer) onTimer(now); },
    at() { return idx; },
    take() { const o = out; out = []; return stringify({ o, s: globalThis.state === undefined ? null : globalThis.state }, big); },
  }) });
})();
`;

/** An output entry as the sandbox wrote it, checked for shape (the rule may have tampered with it). */
export function toOutput(o: unknown): SandboxOutput | null {
  if (!Array.isArray(o) || typeof o[1] !== "number") return null;
  const [type, i] = o as [unknown, number];
  const str = (v: unknown) => (typeof v === "string" ? v : String(v));
  switch (type) {
    case "cmd":
      return { type, i, tag: str(o[2]), value: o[3] };
    case "set":
      return { type, i, tag: str(o[2]), value: o[3] };
    case "raise":
      return { type, i, name: str(o[2]), priority: o[3], message: o[4] };
    case "clear":
      return { type, i, name: str(o[2]) };
    case "log": {
      const level = ["debug", "info", "warn", "error"].includes(o[2] as string) ? (o[2] as "info") : "info";
      const text = str(o[3]);
      return { type, i, level, text: Buffer.byteLength(text) > LOG_LINE_BYTES ? Buffer.from(text).subarray(0, LOG_LINE_BYTES).toString() : text };
    }
    default:
      return null;
  }
}
