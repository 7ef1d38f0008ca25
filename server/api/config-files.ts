// The configuration files over HTTP, for the console's editor (server/config-edit.ts does the work):
// GET /api/config/files (each file's text, secret values redacted), POST /api/config/check (an edit
// checked with the gateway's own config load: every problem with file and path, and the diff against the
// running file), PUT /api/config/files/:name (check, atomic write, hot reload; a refused edit changes
// nothing). All need the `admin` scope: the files describe the plant and the gateway's doors.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { Elysia, t } from "elysia";
import { errorAnswers } from "../../schemas/api.ts";
import { ApiError, redactConfigText } from "../../schemas/index.ts";
import { authOf, authPlugin } from "../auth/index.ts";
import { applyEdit, checkEdit, CONFIG_FILES, fileText, isConfigFile, RedactedEdit, type ConfigFileName } from "../config-edit.ts";
import type { GatewayContext } from "../context.ts";
import { authorize, OpsRefusal, refusal } from "./guard.ts";

/** A config file is small; a megabyte of YAML is a mistake (or an attack on the parser). */
const MAX_TEXT = 1_000_000;

const FileName = t.Union([t.Literal("gateway.yml"), t.Literal("endpoints.yml"), t.Literal("drivers.yml"), t.Literal("variables.yml")], { description: "one of the config directory's files" });
const Text = t.String({ maxLength: MAX_TEXT, description: "the whole file's YAML text" });

const Problem = t.Object({
  file: t.String({ description: "the file's name within the config directory" }),
  path: t.String({ description: "where in it: tags[3].address.area, line 4, column 2 ('' for the whole file)" }),
  message: t.String(),
});

const CheckAnswer = t.Object({
  ok: t.Boolean({ description: "the gateway would run with the edit" }),
  problems: t.Array(Problem),
  diff: t.String({ description: "unified diff from the file on disk to the edit (secret values redacted); '' when unchanged" }),
});

const FilesAnswer = t.Object({
  dir: t.String({ description: "the config directory on the gateway's machine" }),
  watched: t.Boolean({ description: "gateway.yml watchConfig: edits on disk apply by themselves too" }),
  files: t.Array(
    t.Object({
      name: FileName,
      exists: t.Boolean(),
      text: t.String({ description: "secret values shown as [redacted]; an edit holding [redacted] is refused" }),
      redacted: t.Boolean({ description: "some value was hidden: this text cannot be saved back as it is" }),
    }),
  ),
});

const ReloadAnswer = t.Object({
  ok: t.Boolean(),
  error: t.Optional(t.String()),
  file: t.Optional(t.String()),
  path: t.Optional(t.String()),
  driversRestarted: t.Array(t.String()),
  driversAdded: t.Array(t.String()),
  driversRemoved: t.Array(t.String()),
  tags: t.Number(),
  authKeysChanged: t.Boolean(),
  restartNeeded: t.Boolean({ description: "gateway.yml on disk holds settings beyond the Modbus slave's map, auth and console users: they apply after a restart" }),
  restartPaths: t.Array(t.String(), { description: "where gateway.yml on disk differs from the running configuration (e.g. `mqtt.cert`): what the restart will apply" }),
});

const ApplyAnswer = t.Object({ ...CheckAnswer.properties, reload: t.Optional(ReloadAnswer) });
const Refused = t.Object({ ...ApiError.properties, ...ApplyAnswer.properties }, { description: "the edit was refused; nothing changed on disk or in the gateway" });

export function configFilesApi(ctx: GatewayContext) {
  const verifier = authOf(ctx);
  let editing = false;
  const textRefusal = (e: unknown) => (e instanceof RedactedEdit ? new OpsRefusal(400, "redacted_secret", e.message, "text") : e);
  return new Elysia({ name: "config-files" })
    .use(authPlugin(verifier))
    .get(
      "/api/config/files",
      async ({ set, principal }) => {
        try {
          await authorize(verifier, principal, "admin", "reading the configuration");
          const { dir } = ctx.config;
          const files = CONFIG_FILES.map((name) => {
            const raw = fileText(dir, name);
            const text = redactConfigText(raw);
            return { name, exists: existsSync(join(dir, name)), text, redacted: text !== raw };
          });
          return { dir, watched: ctx.config.gateway.watchConfig, files };
        } catch (e) {
          return refusal(set, e);
        }
      },
      { response: { 200: FilesAnswer, ...errorAnswers(401, 403) }, detail: { tags: ["configuration"], summary: "The config files' text (secret values redacted); needs the 'admin' scope" } },
    )
    .post(
      "/api/config/check",
      async ({ body, set, principal }) => {
        try {
          await authorize(verifier, principal, "admin", "checking the configuration");
          return await checkEdit(ctx.config.dir, body.file, body.text).catch((e) => {
            throw textRefusal(e);
          });
        } catch (e) {
          return refusal(set, e);
        }
      },
      {
        body: t.Object({ file: FileName, text: Text }, { additionalProperties: false }),
        response: { 200: CheckAnswer, ...errorAnswers(400, 401, 403) },
        detail: { tags: ["configuration"], summary: "Check an edit of one config file with the others as they are (every problem with file and path) and diff it against the running file; writes nothing" },
      },
    )
    .put(
      "/api/config/files/:name",
      async ({ params, body, set, principal }) => {
        try {
          const who = await authorize(verifier, principal, "admin", "editing the configuration");
          if (!isConfigFile(params.name)) throw new OpsRefusal(404, "unknown_file", `no config file '${params.name}' (one of ${CONFIG_FILES.join(", ")})`, "name");
          if (editing) throw new OpsRefusal(409, "edit_running", "another edit is being applied; ask again when it has finished");
          editing = true;
          try {
            const r = await applyEdit(ctx, params.name as ConfigFileName, body.text).catch((e) => {
              throw textRefusal(e);
            });
            ctx.logger.info({ file: params.name, by: who.sub, ok: r.ok }, r.ok ? "configuration edited through the API" : "configuration edit refused");
            if (r.ok) return r;
            const first = r.problems[0];
            set.status = 422;
            return { error: "config_refused", message: first ? `${first.file}${first.path ? ` at ${first.path}` : ""}: ${first.message}` : "refused", field: "text", ...r };
          } finally {
            editing = false;
          }
        } catch (e) {
          return refusal(set, e);
        }
      },
      {
        params: t.Object({ name: t.String({ description: CONFIG_FILES.join(", ") }) }),
        body: t.Object({ text: Text }, { additionalProperties: false }),
        response: { 200: ApplyAnswer, 422: Refused, ...errorAnswers(400, 401, 403, 404, 409) },
        detail: {
          tags: ["configuration"],
          summary: "Replace one config file: checked as a whole, written atomically, applied by hot reload; needs the 'admin' scope",
          description: "422: refused with every problem (file, path): nothing was written and the gateway runs as before. 200: written and reloaded (the reload result says which drivers restarted).",
        },
      },
    );
}
