// The plugins API: GET /api/plugins (scope read), and with the `admin` scope:
// POST /api/plugins (upload a plugin folder as a tar / tar.gz body or as the files of a multipart form;
// a new plugin is loaded, a new version of a loaded one is swapped in with rollback),
// POST /api/plugins/:name/swap (the same, for that plugin only), /rollback (back to the version it
// replaced) and /unload. Every upload is size-limited (gateway.yml plugins.maxUploadBytes) and checked
// (trust.ts) before anything of it runs. Also the client side for `edgectl plugin ...`.
import { Elysia, t } from "elysia";
import { errorAnswers } from "../../schemas/api.ts";
import { PluginStatus } from "../../schemas/plugins.ts";
import { ArchiveError, filesOfTar, memberPath, writeFiles } from "../../drivers/plugins/archive.ts";
import { PluginRefused } from "../../drivers/plugins/manifest.ts";
import { PluginOperationError, type PluginRegistry } from "../../drivers/plugins/registry.ts";
import { AuthError, authOf, requireScope } from "../auth/index.ts";
import type { GatewayContext } from "../context.ts";
import type { ApiError } from "./params.ts";

class UploadTooLarge extends Error {
  override name = "UploadTooLarge";
}

/** The request body as plugin files: multipart (each part's filename is its relative path) or a tar / tar.gz. */
async function uploadedFiles(request: Request, maxBytes: number): Promise<Map<string, Blob>> {
  const declared = Number(request.headers.get("content-length") ?? "0");
  if (declared > maxBytes) throw new UploadTooLarge(`the upload is ${declared} bytes, more than plugins.maxUploadBytes (${maxBytes})`);
  const type = request.headers.get("content-type") ?? "";
  if (type.startsWith("multipart/form-data")) {
    const form = await request.formData();
    const files = new Map<string, Blob>();
    let total = 0;
    // FormData's entries are strings or Files; the DOM lib typing here narrows a File to never
    for (const value of form.values() as Iterable<unknown>) {
      if (!(value instanceof Blob)) continue;
      const part = value as File;
      total += part.size;
      if (total > maxBytes) throw new UploadTooLarge(`the upload is more than plugins.maxUploadBytes (${maxBytes})`);
      files.set(memberPath(part.name), part);
    }
    return files;
  }
  const bytes = new Uint8Array(await request.arrayBuffer());
  if (bytes.length > maxBytes) throw new UploadTooLarge(`the upload is ${bytes.length} bytes, more than plugins.maxUploadBytes (${maxBytes})`);
  return filesOfTar(bytes);
}

/** Stages the upload, installs it (load or swap), and cleans the staging folder whatever happens. */
async function installUpload(reg: PluginRegistry, request: Request, maxBytes: number, expectName?: string): Promise<PluginStatus> {
  const staged = await reg.stagingDir();
  try {
    await writeFiles(staged, await uploadedFiles(request, maxBytes));
    if (expectName) {
      const name = (Bun.TOML.parse(await Bun.file(`${staged}/plugin.toml`).text()) as { name?: unknown }).name;
      if (name !== expectName) throw new PluginOperationError(expectName, `the upload holds plugin '${String(name)}'`, 409);
    }
    return await reg.install(staged);
  } finally {
    await reg.discard(staged);
  }
}

/** Every refusal of this API as { status, error, message, field }. */
function refusalOf(e: unknown): { status: number; body: ApiError } | null {
  if (e instanceof AuthError) return { status: e.status, body: { error: e.code, message: e.message, field: null } };
  if (e instanceof UploadTooLarge) return { status: 413, body: { error: "upload_too_large", message: e.message, field: "body" } };
  if (e instanceof ArchiveError) return { status: 400, body: { error: "invalid_archive", message: e.message, field: "body" } };
  if (e instanceof PluginRefused) return { status: 422, body: { error: "plugin_refused", message: e.message, field: e.reason } };
  if (e instanceof PluginOperationError) return { status: e.status, body: { error: e.status === 422 ? "swap_failed" : e.status === 404 ? "not_found" : "conflict", message: e.message, field: null } };
  return null;
}

const NameParam = t.Object({ name: t.String({ pattern: "^[a-z][a-z0-9_-]{0,63}$", description: "the plugin's name" }) });

export function pluginsApi(ctx: GatewayContext) {
  const verifier = authOf(ctx);
  const registry = (): PluginRegistry => {
    if (!ctx.plugins) throw new PluginOperationError("*", "this gateway runs without a plugin registry", 404);
    return ctx.plugins;
  };
  const needScope = async (request: Request, scope: "read" | "admin") => {
    // without auth keys only GET /api/tags stays open (server/auth/README.md): plugins are neither listed nor managed
    if (!verifier.isConfigured) throw new AuthError(401, "invalid_token", "gateway.yml configures no auth keys (auth.hs256Secret or auth.jwksFile): plugins are refused");
    const p = await verifier.verifyRequest(request);
    if (scope === "admin") {
      if (!p.scopes.includes("admin")) throw new AuthError(403, "insufficient_scope", "the token has no 'admin' scope");
    } else {
      const denied = requireScope(p, "read");
      if (denied) throw denied;
    }
  };
  /** Runs an admin operation and maps its refusals. */
  const admin = async (request: Request, set: { status?: number | string }, op: () => Promise<PluginStatus>): Promise<PluginStatus | ApiError> => {
    try {
      await needScope(request, "admin");
      const out = await op();
      return out;
    } catch (e) {
      const r = refusalOf(e);
      if (!r) throw e;
      set.status = r.status;
      return r.body;
    }
  };
  const maxBytes = () => ctx.config.gateway.plugins.maxUploadBytes;
  const answers = { 200: PluginStatus, ...errorAnswers(400, 401, 403, 404, 409, 413, 422) };
  return new Elysia({ name: "plugins" })
    .get(
      "/api/plugins",
      async ({ request, set }) => {
        try {
          await needScope(request, "read");
          return ctx.plugins?.status() ?? [];
        } catch (e) {
          const r = refusalOf(e);
          if (!r) throw e;
          set.status = r.status;
          return r.body;
        }
      },
      {
        response: { 200: t.Array(PluginStatus), ...errorAnswers(401, 403) },
        detail: { tags: ["plugins"], summary: "Plugins with version, signer, state, api range, refusal and last swap (JWT scope read when auth is configured)" },
      },
    )
    .post("/api/plugins", ({ set, request }) => admin(request, set, () => installUpload(registry(), request, maxBytes())), {
      parse: "none",
      response: answers,
      detail: { tags: ["plugins"], summary: "Upload a signed plugin folder (tar, tar.gz, or multipart files with relative names): loaded, or swapped in with rollback if loaded; needs 'admin'" },
    })
    .post("/api/plugins/:name/swap", ({ set, request, params }) => admin(request, set, () => installUpload(registry(), request, maxBytes(), params.name)), {
      parse: "none",
      params: NameParam,
      response: answers,
      detail: { tags: ["plugins"], summary: "Swap a loaded plugin for the uploaded version (same body as POST /api/plugins); rolled back if it fails; needs 'admin'" },
    })
    .post("/api/plugins/:name/rollback", ({ request, set, params }) => admin(request, set, () => registry().rollback(params.name)), {
      params: NameParam,
      response: answers,
      detail: { tags: ["plugins"], summary: "Swap back to the version this plugin replaced (kept in plugins/.trash); needs 'admin'" },
    })
    .post(
      "/api/plugins/:name/unload",
      ({ request, set, params }) =>
        admin(request, set, async () => {
          await registry().unload(params.name);
          return { name: params.name, state: "removed", unsigned: false, drivers: [] } satisfies PluginStatus;
        }),
      {
        params: NameParam,
        response: answers,
        detail: { tags: ["plugins"], summary: "Unload a plugin no driver runs (its folder goes to plugins/.trash); needs 'admin'" },
      },
    );
}

/** The client side (`edgectl plugin ...`): one call to a running gateway; throws with the gateway's reason. */
export async function pluginRequest(baseUrl: string, token: string | undefined, method: "GET" | "POST", path: string, body?: { bytes: Uint8Array<ArrayBuffer>; type: string }): Promise<unknown> {
  const res = await fetch(new URL(path, baseUrl), {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body ? { "content-type": body.type } : {}) },
    ...(body ? { body: body.bytes } : {}),
  });
  const answer = (await res.json().catch(() => ({}))) as { error?: string; message?: string };
  if (!res.ok) throw new Error(`${method} ${path} refused by ${baseUrl} (${res.status} ${answer.error ?? ""}): ${answer.message ?? res.statusText}`);
  return answer;
}
