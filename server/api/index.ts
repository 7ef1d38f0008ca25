// The HTTP API: one Elysia plugin per area, composed here.
import { Elysia } from "elysia";
import type { GatewayContext } from "../context.ts";
import { backupApi } from "./backup.ts";
import { commandsApi } from "./commands.ts";
import { healthApi } from "./health.ts";
import { InvalidParam, validationError, type ApiError } from "./params.ts";
import { queryApi } from "./query.ts";
import { tagsApi } from "./tags.ts";

export type ApiPlugin = (ctx: GatewayContext) => Elysia<any, any, any, any, any, any, any>;

export const apiPlugins: ApiPlugin[] = [healthApi, tagsApi, commandsApi, (ctx) => queryApi(ctx), backupApi];

export function createApi(ctx: GatewayContext) {
  // every error leaves as JSON in one shape, { error, message, field } (server/api/params.ts); nothing
  // escapes to crash the process
  const app = new Elysia().onError(({ code, error, set, request }): ApiError => {
    if (code === "NOT_FOUND") {
      set.status = 404;
      return { error: "not_found", message: "no such route", field: null };
    }
    if (code === "VALIDATION") {
      set.status = 400;
      return validationError(error, request);
    }
    if (code === "PARSE") {
      set.status = 400;
      return { error: "invalid_body", message: "body is not valid JSON", field: "body" };
    }
    if (error instanceof InvalidParam) {
      set.status = 400;
      return { error: "invalid_request", message: error.message, field: error.field };
    }
    ctx.logger.error({ err: error }, "request failed");
    set.status = typeof set.status === "number" && set.status >= 400 ? set.status : 500;
    return { error: "internal", message: error instanceof Error ? error.message : String(error), field: null };
  });
  for (const plugin of apiPlugins) app.use(plugin(ctx));
  return app;
}
