// The plugin package: its manifest (plugin.toml), the reasons a plugin is refused, and the status the
// API and the console show. Shared by drivers/plugins (loading, trust) and server (API, edgectl).
import { Type, type Static } from "@sinclair/typebox";

const Sha256 = Type.String({ pattern: "^[0-9a-f]{64}$", description: "SHA-256 of the file, lower-case hex" });

export const PluginManifest = Type.Object(
  {
    name: Type.String({ pattern: "^[a-z][a-z0-9_-]{0,63}$", description: "the plugin's name; drivers.yml names it with `plugin: <name>`" }),
    kind: Type.Union([Type.Literal("driver"), Type.Literal("decoder")]),
    version: Type.String({ minLength: 1, maxLength: 64, description: "the plugin's own version, e.g. 1.2.0" }),
    description: Type.Optional(Type.String({ maxLength: 400 })),
    entry: Type.String({ minLength: 1, description: "the file the child process loads: a .js/.ts module or a .wasm module" }),
    api: Type.Object(
      {
        min: Type.Integer({ minimum: 1, description: "lowest plugin API version the plugin works with" }),
        max: Type.Integer({ minimum: 1, description: "highest plugin API version the plugin works with" }),
      },
      { additionalProperties: false },
    ),
    capabilities: Type.Object(
      {
        endpoints: Type.Array(Type.String({ pattern: "^[a-z][a-z0-9+.-]*$" }), {
          default: [],
          description: "URL schemes of the endpoints the plugin may be given and open (e.g. tcp, http); none by default",
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    config: Type.Record(Type.String(), Type.Unknown(), { default: {}, description: "JSON Schema of the driver's config in drivers.yml (checked at init)" }),
    files: Type.Record(Type.String(), Sha256, { description: "every file of the plugin folder except plugin.toml and plugin.sig, with its SHA-256" }),
  },
  { additionalProperties: false },
);
export type PluginManifest = Static<typeof PluginManifest>;

/** What failed when a plugin is refused: the first word of every refusal. */
export const RefusalReason = Type.Union([
  Type.Literal("manifest"),
  Type.Literal("signature"),
  Type.Literal("key"),
  Type.Literal("checksum"),
  Type.Literal("api"),
  Type.Literal("capability"),
  Type.Literal("config"),
]);
export type RefusalReason = Static<typeof RefusalReason>;

/** The data of a `plugin.refused` event frame. */
export const PluginRefusal = Type.Object({
  plugin: Type.String({ description: "the plugin's name, or its folder name when the manifest could not be read" }),
  reason: RefusalReason,
  file: Type.Optional(Type.String({ description: "the file that failed its checksum" })),
  message: Type.String(),
});
export type PluginRefusal = Static<typeof PluginRefusal>;

export const PluginState = Type.Union([Type.Literal("loaded"), Type.Literal("refused"), Type.Literal("swapping"), Type.Literal("removed")]);
export type PluginState = Static<typeof PluginState>;

/** A decoder plugin's process as the registry runs it (drivers/plugins/decoder.ts), in GET /api/plugins and /readyz. */
export const DecoderStatus = Type.Object({
  running: Type.Boolean({ description: "a process serves the decoder now (the first batch starts it)" }),
  pid: Type.Optional(Type.Integer({ description: "the running process's id" })),
  version: Type.Optional(Type.String({ description: "the version the last process started with" })),
  batches: Type.Integer({ minimum: 0, description: "batches decoded since the gateway started" }),
  crashes: Type.Integer({ minimum: 0, description: "processes ended by a crash, a missed deadline or an out-of-memory since the gateway started" }),
  lastError: Type.Optional(Type.String({ description: "why the last process ended or failed to start" })),
  backoffMs: Type.Optional(
    Type.Integer({ minimum: 1, description: "set while crashes in a row back off: the decoder's messages are refused for this long still" }),
  ),
});
export type DecoderStatus = Static<typeof DecoderStatus>;

/** One plugin as GET /api/plugins lists it. */
export const PluginStatus = Type.Object({
  name: Type.String(),
  state: PluginState,
  kind: Type.Optional(Type.Union([Type.Literal("driver"), Type.Literal("decoder")])),
  version: Type.Optional(Type.String()),
  api: Type.Optional(Type.Object({ min: Type.Integer(), max: Type.Integer() })),
  signer: Type.Optional(Type.String({ description: "comment of the authorized key that signed it" })),
  unsigned: Type.Boolean({ description: "loaded without a signature under the development switch" }),
  refusal: Type.Optional(PluginRefusal),
  drivers: Type.Array(Type.String(), { description: "ids of the drivers running this plugin" }),
  decoder: Type.Optional(DecoderStatus),
  loadedAt: Type.Optional(Type.Number({ description: "ms since the Unix epoch" })),
  lastSwap: Type.Optional(
    Type.Object({
      from: Type.String(),
      to: Type.String(),
      ok: Type.Boolean(),
      gapMs: Type.Optional(Type.Number({ description: "time between the last poll of the old version and the first of the new" })),
      error: Type.Optional(Type.String()),
      at: Type.Number(),
    }),
  ),
});
export type PluginStatus = Static<typeof PluginStatus>;
