// What a rule's run produced, checked by the host and turned into frames. This is the security boundary
// (the sandbox's own checks only give the author an early error): a command must name a tag of the
// rule's `writes` list and pass checkWrite (schemas/command.ts, the check every write origin uses); setTag
// only the rule's `sets` tags that no catalog entry produces, with a scalar value; an alarm request takes the alarm contract's shape
// (schemas/alarms.ts). A refused output is not applied; it becomes a `rule.refused` event.
import { AlarmPriority, AlarmRequest } from "../../schemas/alarms.ts";
import type { Catalog } from "../../schemas/catalog.ts";
import { checkWrite } from "../../schemas/command.ts";
import type { CmdFrame, DataFrame, EventFrame, Frame, Value } from "../../schemas/frames.ts";
import { Quality } from "../../schemas/quality.ts";
import type { RuleMeta } from "../../schemas/rules.ts";
import type { SandboxOutput } from "./sandbox.ts";

export const DEFAULT_COMMAND_TTL_MS = 30_000;
const MESSAGE_CHARS = 1024;
const PRIORITIES = new Set<string>(AlarmPriority.anyOf.map((l: { const: string }) => l.const));

/** Where a run's messages came from: for message i, its offset and times (timer runs: i = -1). */
export interface RunOrigin {
  /** offset of message i, used in command ids (-1: the timer tick) */
  offsetOf(i: number): number;
  /** source timestamp of message i, µs (the timer: the tick's time) */
  tsOf(i: number): number;
  /** commit time of message i, µs: a command expires `commandTtlMs` after its trigger was logged */
  loggedAtOf(i: number): number;
  /** a timer tick's id part (its scheduled time, ms) */
  tick?: number;
}

export interface Refusal {
  what: "sendCommand" | "setTag" | "raiseAlarm";
  tag?: string;
  reason: string;
  i: number;
}

export interface Converted {
  frames: Frame[];
  /** for each frame, the index of the message whose run produced it (-1: the timer) */
  producedBy: number[];
  refusals: Refusal[];
  logs: Extract<SandboxOutput, { type: "log" }>[];
}

const isScalar = (v: unknown): v is Value => v === null || typeof v === "number" || typeof v === "boolean" || typeof v === "string";

/**
 * Frames for the outputs of one run. Command ids are deterministic (`rule:<name>:<offset>:<n>`, timer
 * ticks `rule:<name>:t<tickMs>:<n>`): a run repeated after a crash before its commit gives the same ids.
 */
export function convertOutputs(rule: string, meta: RuleMeta, catalog: Catalog, outputs: readonly SandboxOutput[], origin: RunOrigin, nowMicros: number): Converted {
  const source = `rule:${rule}`;
  const frames: Frame[] = [];
  const producedBy: number[] = [];
  const refusals: Refusal[] = [];
  const logs: Converted["logs"] = [];
  const perMessage = new Map<number, number>();
  const ttlMicros = (meta.commandTtlMs ?? DEFAULT_COMMAND_TTL_MS) * 1000;
  for (const o of outputs) {
    switch (o.type) {
      case "cmd": {
        if (!meta.writes.includes(o.tag)) {
          refusals.push({ what: "sendCommand", tag: o.tag, reason: `tag '${o.tag}' is not in meta.writes`, i: o.i });
          break;
        }
        const tag = catalog.get(o.tag);
        const checked = checkWrite(tag, o.value);
        if (!checked.ok) {
          refusals.push({ what: "sendCommand", tag: o.tag, reason: `${checked.code}: ${checked.message}`, i: o.i });
          break;
        }
        const n = perMessage.get(o.i) ?? 0;
        perMessage.set(o.i, n + 1);
        const at = o.i < 0 ? `t${origin.tick ?? 0}` : String(origin.offsetOf(o.i));
        const cmd: CmdFrame = {
          kind: "cmd",
          id: `${source}:${at}:${n}`,
          tag: o.tag,
          value: checked.value,
          origin: "rule",
          actor: source,
          tenant: tag!.tenant, // checkWrite refuses an unknown tag
          ts: nowMicros,
          expiresAt: origin.loggedAtOf(o.i) + ttlMicros,
        };
        frames.push(cmd);
        producedBy.push(o.i);
        break;
      }
      case "set": {
        if (!meta.sets.includes(o.tag) || catalog.has(o.tag)) {
          refusals.push({ what: "setTag", tag: o.tag, reason: `tag '${o.tag}' is not in meta.sets or is produced by variables.yml`, i: o.i });
          break;
        }
        if (!isScalar(o.value) || (typeof o.value === "number" && !Number.isFinite(o.value))) {
          refusals.push({ what: "setTag", tag: o.tag, reason: "the value must be a finite number, a boolean, a string or null", i: o.i });
          break;
        }
        const frame: DataFrame = { kind: "data", tag: o.tag, value: o.value, ts: origin.tsOf(o.i), quality: Quality.Good, source };
        frames.push(frame);
        producedBy.push(o.i);
        break;
      }
      case "raise": {
        const priority = typeof o.priority === "string" && PRIORITIES.has(o.priority) ? o.priority : null;
        if (priority === null) {
          refusals.push({ what: "raiseAlarm", reason: `priority must be one of ${[...PRIORITIES].join(", ")}`, i: o.i });
          break;
        }
        const message = String(o.message ?? o.name).slice(0, MESSAGE_CHARS);
        frames.push(alarmEvent(AlarmRequest.Raise, source, origin.tsOf(o.i), { name: o.name, priority, message }));
        producedBy.push(o.i);
        break;
      }
      case "clear":
        frames.push(alarmEvent(AlarmRequest.Clear, source, origin.tsOf(o.i), { name: o.name }));
        producedBy.push(o.i);
        break;
      case "log":
        logs.push(o);
        break;
    }
  }
  return { frames, producedBy, refusals, logs };
}

const alarmEvent = (type: string, source: string, ts: number, data: Record<string, unknown>): EventFrame => ({ kind: "event", type, source, ts, data });
