// POST /api/backup: a consistent online backup of the log (database + Parquet archive) into
// <dataDir>/backups/<name>/, while the gateway runs (storage/backup.ts). Needs a JWT with the `admin`
// scope: a backup is a full copy of every tenant's data. One at a time; a second request gets 409.
// Also the client side for `edgectl backup`: the running gateway holds the database's lock, so a
// backup of a running gateway can only be asked of it, over HTTP.
import { join } from "node:path";
import { Elysia, t } from "elysia";
import { errorAnswers } from "../../schemas/api.ts";
import { backupLog, backupName, BackupError, type BackupResult } from "../../storage/backup.ts";
import { AuthError, authOf, authPlugin, type Principal } from "../auth/index.ts";
import type { GatewayContext } from "../context.ts";
import { archiveDirOf } from "../history.ts";

const BackupAnswer = t.Object({
  path: t.String({ description: "the backup folder on the gateway's machine (log.duckdb, archive/, backup.json)" }),
  head: t.Number({ description: "every frame 1..head is in the backup" }),
  archived: t.Number(),
  archiveFiles: t.Number(),
  bytes: t.Number(),
  durationMs: t.Number(),
});

/** Where the gateway writes its backups. */
export const backupsDirOf = (dataDir: string) => join(dataDir, "backups");

/** Backs up the gateway's log now into <dataDir>/backups/<name>. */
export function backupGateway(ctx: GatewayContext, name = backupName()): Promise<BackupResult> {
  const { dataDir } = ctx.config.gateway;
  return backupLog(ctx.log, archiveDirOf(dataDir), join(backupsDirOf(dataDir), name));
}

export function backupApi(ctx: GatewayContext) {
  const verifier = authOf(ctx); // the live keys (a reload applies at once) and the request's one verification
  let running: Promise<BackupResult> | null = null;
  const authorize = async (principal: () => Promise<Principal>) => {
    if (!verifier.isConfigured) throw new AuthError(401, "invalid_token", "gateway.yml configures no auth keys (auth.hs256Secret or auth.jwksFile): backups are refused");
    const p = await principal();
    if (!p.scopes.includes("admin")) throw new AuthError(403, "insufficient_scope", "the token has no 'admin' scope");
    return p;
  };
  return new Elysia({ name: "backup" }).use(authPlugin(verifier)).post(
    "/api/backup",
    async ({ set, principal }) => {
      try {
        const who = await authorize(principal);
        if (running) {
          set.status = 409;
          return { error: "backup_running", message: "a backup is running; ask again when it has finished", field: null };
        }
        running = backupGateway(ctx);
        const result = await running.finally(() => (running = null));
        ctx.logger.info({ ...result, by: who.sub }, "backup written");
        return result;
      } catch (e) {
        if (e instanceof AuthError) return ((set.status = e.status), { error: e.code, message: e.message, field: null });
        if (e instanceof BackupError) {
          ctx.logger.error({ err: e }, "backup failed");
          return ((set.status = 500), { error: "backup_failed", message: e.message, field: null });
        }
        throw e;
      }
    },
    {
      response: { 200: BackupAnswer, ...errorAnswers(401, 403, 409, 500) },
      detail: { tags: ["operations"], summary: "Consistent online backup of the log (database and archive) under <dataDir>/backups; needs the 'admin' scope" },
    },
  );
}

/** `edgectl backup`: asks a running gateway at `baseUrl` for a backup; throws with the gateway's reason. */
export async function requestBackup(baseUrl: string, token: string): Promise<BackupResult> {
  const res = await fetch(new URL("/api/backup", baseUrl), { method: "POST", headers: { authorization: `Bearer ${token}` } });
  const body = (await res.json().catch(() => ({}))) as Partial<BackupResult> & { error?: string; message?: string };
  if (!res.ok) throw new BackupError(`backup refused by ${baseUrl} (${res.status} ${body.error ?? ""}): ${body.message ?? res.statusText}`);
  return body as BackupResult;
}
