// User rules (rules/*.js in the config directory): the `meta` object a rule file exports, and the API's
// views of rules (GET /api/rules, dry runs). Pure: no I/O. The runtime is bridges/rules/ (sandbox, runner).
import { Type, type Static } from "@sinclair/typebox";

const TagName = Type.String({ minLength: 1 });

export const RuleMeta = Type.Object(
  {
    description: Type.Optional(Type.String()),
    triggers: Type.Array(TagName, { default: [], description: "tags whose frames run onMessage(msg)" }),
    everyMs: Type.Optional(Type.Integer({ minimum: 100, description: "run onTimer(nowMs) this often (at most once per tick; missed ticks are not caught up)" })),
    writes: Type.Array(TagName, { default: [], description: "tags sendCommand may write (each also checked as every write is)" }),
    sets: Type.Array(TagName, { default: [], description: "tags setTag may produce: not in variables.yml (each catalog tag has its one producer)" }),
    timeLimitMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 5000, description: "wall time of one message or timer run (default 50)" })),
    memoryMiB: Type.Optional(Type.Integer({ minimum: 1, maximum: 256, description: "heap ceiling (default 16)" })),
    commandTtlMs: Type.Optional(Type.Integer({ minimum: 1, description: "a command expires this long after its trigger was logged (default 30000)" })),
  },
  { $id: "RuleMeta", additionalProperties: false },
);
export type RuleMeta = Static<typeof RuleMeta>;

export const RuleState = Type.Union([Type.Literal("running"), Type.Literal("disabled"), Type.Literal("invalid"), Type.Literal("stopped")], {
  description: "running; disabled (by an operator or after repeated faults); invalid (the file does not load); stopped",
});

export const RuleView = Type.Object(
  {
    name: Type.String(),
    file: Type.String(),
    state: RuleState,
    disabledReason: Type.Union([Type.String(), Type.Null()]),
    meta: Type.Union([Type.Unknown(), Type.Null()]),
    runs: Type.Number({ description: "messages and timer ticks run" }),
    faults: Type.Number({ description: "runs stopped by a limit or an exception" }),
    refused: Type.Number({ description: "outputs refused by the host (write list, checkWrite, setTag list)" }),
    usPerRun: Type.Number({ description: "mean wall time of one run, microseconds" }),
    lastError: Type.Union([Type.String(), Type.Null()]),
    lastErrorAt: Type.Union([Type.String(), Type.Null()]),
    lagFrames: Type.Number(),
  },
  { $id: "RuleView" },
);
export type RuleView = Static<typeof RuleView>;

export const DryRunRequest = Type.Object(
  {
    source: Type.Optional(Type.String({ description: "rule text to try instead of the saved file (for a new rule, the name is only a label)" })),
    from: Type.Optional(Type.String({ description: "start of the history replayed: ISO date or epoch ms (default one hour before `to`)" })),
    to: Type.Optional(Type.String({ description: "end: ISO date or epoch ms (default now)" })),
  },
  { $id: "DryRunRequest", additionalProperties: false },
);
export type DryRunRequest = Static<typeof DryRunRequest>;

const JsonValue = Type.Union([Type.Number(), Type.Boolean(), Type.String(), Type.Null()]);

export const DryRunResult = Type.Object(
  {
    frames: Type.Number({ description: "trigger frames replayed" }),
    timerRuns: Type.Number(),
    commands: Type.Array(Type.Object({ tag: Type.String(), value: JsonValue, at: Type.String({ description: "time of the trigger" }) })),
    setTags: Type.Array(Type.Object({ tag: Type.String(), value: JsonValue, at: Type.String() })),
    alarms: Type.Array(Type.Object({ action: Type.String({ description: "raise | clear" }), name: Type.String(), priority: Type.Optional(Type.String()), message: Type.Optional(Type.String()), at: Type.String() })),
    logs: Type.Array(Type.Object({ level: Type.String(), text: Type.String(), at: Type.String() })),
    refused: Type.Array(Type.Object({ what: Type.String(), tag: Type.Optional(Type.String()), reason: Type.String(), at: Type.String() })),
    faults: Type.Array(Type.Object({ kind: Type.String(), message: Type.String(), at: Type.String() })),
    truncated: Type.Boolean({ description: "more outputs than listed (each list keeps its first 1000)" }),
    stopped: Type.Optional(Type.String({ description: "why the dry run ended before the end of the range (the live rule would have been disabled)" })),
  },
  { $id: "DryRunResult" },
);
export type DryRunResult = Static<typeof DryRunResult>;

export const RuleDetail = Type.Object(
  { ...RuleView.properties, source: Type.Union([Type.String(), Type.Null()], { description: "the file's text (null: the file is gone)" }) },
  { $id: "RuleDetail" },
);

export const PutRuleBody = Type.Object({ source: Type.String({ description: "the rule's JavaScript text (rules/<name>.js)" }) }, { $id: "PutRuleBody", additionalProperties: false });
export type PutRuleBody = Static<typeof PutRuleBody>;
