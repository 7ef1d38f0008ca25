// The `modbusSlave:` section of gateway.yml: listener, limits, client allowlist and the register map
// (which tag is served at which unit/area/address, with which encoding and scaling).
// `enabled` and `port` are declared in schemas/config.ts; this schema owns the rest.
import { Type, type Static } from "@sinclair/typebox";
import { ConfigError, parseWithSchema, type Catalog } from "../../schemas/index.ts";
import { registerCount } from "../../schemas/registers.ts";

const RegisterType = Type.Union(
  ["bool", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "string"].map((t) => Type.Literal(t)),
  { description: "encoding on the wire; default: the tag's type from variables.yml" },
);
export type RegisterType = Static<typeof RegisterType>;

export const Area = Type.Union([Type.Literal("coil"), Type.Literal("discrete"), Type.Literal("holding"), Type.Literal("input")]);
export type Area = Static<typeof Area>;

/**
 * What a read answers for a tag whose latest quality is Bad or that was never read (Modbus has no quality
 * field, so a number alone would let SCADA take "PLC down" for a real value).
 */
const onBad = (opts: { description: string; default?: string }) =>
  Type.Union([Type.Literal("exception"), Type.Literal("hold"), Type.Literal("zero")], opts);
const ON_BAD_HELP =
  "a read touching a tag whose quality is Bad or that was never read: exception = answer exception 0B (gateway target failed to respond); " +
  "hold = serve the last usable value (0 if none); zero = serve 0";
export type OnBad = Static<ReturnType<typeof onBad>>;

const ADDRESS_PATTERN = "^[0-9.]+(/[0-9]{1,2})?$|^[0-9a-fA-F:]+$";

export const MapEntry = Type.Object(
  {
    tag: Type.String({ minLength: 1, description: "tag of variables.yml" }),
    unitId: Type.Integer({ minimum: 0, maximum: 255, default: 1 }),
    area: Area,
    address: Type.Integer({ minimum: 0, maximum: 65535, description: "zero-based coil/register address" }),
    type: Type.Optional(RegisterType),
    length: Type.Optional(Type.Integer({ minimum: 1, maximum: 125, description: "registers, for strings (2 characters each)" })),
    byteOrder: Type.Union([Type.Literal("BE"), Type.Literal("LE")], { default: "BE", description: "bytes within a register" }),
    wordOrder: Type.Union([Type.Literal("BE"), Type.Literal("LE")], { default: "BE", description: "BE: high word first (ABCD); LE: low word first (CDAB)" }),
    scale: Type.Number({ default: 1, description: "engineering = raw * scale + offset (as in variables.yml)" }),
    offset: Type.Number({ default: 0 }),
    onBad: Type.Optional(onBad({ description: "this entry's answer for a Bad or never-read tag; default: the section's onBad" })),
  },
  { additionalProperties: false },
);
export type MapEntry = Static<typeof MapEntry>;

export const ModbusSlaveConfig = Type.Object(
  {
    enabled: Type.Boolean({ default: true }),
    host: Type.String({ default: "127.0.0.1", description: "interface to listen on; 0.0.0.0: every interface" }),
    port: Type.Integer({ minimum: 0, maximum: 65535, default: 5020 }),
    maxConnections: Type.Integer({ minimum: 1, maximum: 10_000, default: 64, description: "further connections are closed at once" }),
    idleTimeoutMs: Type.Integer({ minimum: 100, default: 60_000, description: "a connection silent this long is closed" }),
    writeTimeoutMs: Type.Integer({ minimum: 1, default: 5000, description: "longest a write waits for the PLC's ack; then exception 0B (outcome unknown)" }),
    allowlist: Type.Optional(
      Type.Array(Type.String({ pattern: ADDRESS_PATTERN }), {
        description: "client addresses (IPv4, IPv4/prefix or IPv6) allowed to connect; absent: everyone",
      }),
    ),
    writeAllowlist: Type.Optional(
      Type.Array(Type.String({ pattern: ADDRESS_PATTERN }), {
        description:
          "client addresses (IPv4, IPv4/prefix or IPv6) whose writes (FC 5, 6, 15, 16, 23) become commands; absent: every write is refused with exception 01 (illegal function)",
      }),
    ),
    unmapped: Type.Union([Type.Literal("zero"), Type.Literal("exception")], {
      default: "zero",
      description: "unmapped addresses inside a read that touches a mapped one: read as 0, or exception 02 for the whole read",
    }),
    onBad: onBad({ description: ON_BAD_HELP, default: "exception" }),
    map: Type.Array(MapEntry, { default: [] }),
  },
  { additionalProperties: false },
);
export type ModbusSlaveConfig = Static<typeof ModbusSlaveConfig>;


/** A map entry with its type resolved against the catalog, its width and its onBad (entry's, else the section's). */
export type ResolvedEntry = Omit<MapEntry, "onBad"> & { type: RegisterType; width: number; index: number; onBad: OnBad };

/**
 * Validates the section, resolves each entry's type from the catalog and refuses overlapping
 * entries (same unit and area, intersecting address ranges) with a ConfigError naming the file and path.
 * `catalog` is anything with `get(tag)`: config reload checks a new map against the new tags before applying them.
 */
export function parseModbusSlaveConfig(raw: unknown, file: string, catalog: Pick<Catalog, "get">): { config: ModbusSlaveConfig; entries: ResolvedEntry[] } {
  const config = parseWithSchema(ModbusSlaveConfig, raw, file, "modbusSlave");
  const entries: ResolvedEntry[] = config.map.map((e, i) => {
    const path = `modbusSlave.map[${i}]`;
    const tag = catalog.get(e.tag);
    if (!tag) throw new ConfigError(file, `${path}.tag`, `unknown tag '${e.tag}' (not in variables.yml)`);
    const bitArea = e.area === "coil" || e.area === "discrete";
    const type: RegisterType = e.type ?? (bitArea ? "bool" : (tag.type as RegisterType));
    if (bitArea && type !== "bool") throw new ConfigError(file, `${path}.type`, `area '${e.area}' holds booleans; type must be bool, got '${type}'`);
    if (type === "string" && e.length === undefined) throw new ConfigError(file, `${path}.length`, "a string needs its length in registers");
    const width = registerCount({ type, length: e.length }); // a bool on a coil/discrete input: one bit
    if (e.address + width > 65536) throw new ConfigError(file, `${path}.address`, `${e.address}+${width} runs past address 65535`);
    return { ...e, type, width, index: i, onBad: e.onBad ?? config.onBad };
  });
  // Overlaps: sort per unit/area by address; each entry must start after the previous one ends.
  const groups = new Map<string, ResolvedEntry[]>();
  for (const e of entries) {
    const k = `${e.unitId}/${e.area}`;
    (groups.get(k) ?? groups.set(k, []).get(k)!).push(e);
  }
  for (const list of groups.values()) {
    list.sort((a, b) => a.address - b.address || a.index - b.index);
    for (let i = 1; i < list.length; i++) {
      const prev = list[i - 1]!;
      const cur = list[i]!;
      if (cur.address < prev.address + prev.width) {
        const later = cur.index > prev.index ? cur : prev;
        const earlier = later === cur ? prev : cur;
        throw new ConfigError(
          file,
          `modbusSlave.map[${later.index}].address`,
          `unit ${later.unitId} ${later.area} ${later.address}..${later.address + later.width - 1} (${later.tag}) overlaps ` +
            `modbusSlave.map[${earlier.index}] ${earlier.address}..${earlier.address + earlier.width - 1} (${earlier.tag})`,
        );
      }
    }
  }
  return { config, entries };
}
