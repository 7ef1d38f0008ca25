// The HTTP API: one Elysia plugin per area, composed here, with the OpenAPI document of them all
// (openapi.ts, docs-page.ts), one error shape { error, message, field } for every refusal (params.ts),
// and one rule for tag paths on every route (tag-path.ts). A GET that no route answers outside /api is the
// operations console's (../console-static.ts): the console never shadows a route.
import { Elysia } from "elysia";
import type { GatewayContext } from "../context.ts";
import { alarmsApi } from "./alarms.ts";
import { backupApi } from "./backup.ts";
import { commandsApi } from "./commands.ts";
import { configFilesApi } from "./config-files.ts";
import { discoverApi } from "./discover.ts";
import { docsPage } from "./docs-page.ts";
import { healthApi } from "./health.ts";
import { inspectApi } from "./inspect.ts";
import { API_DOCS, OPENAPI_JSON, openapiPlugin } from "./openapi.ts";
import { driversApi } from "./drivers.ts";
import { loginApi } from "./login.ts";
import { overviewApi } from "./overview.ts";
import { opcuaCertsApi } from "./opcua-certs.ts";
import { InvalidParam, validationError, type ApiError } from "./params.ts";
import { pluginsApi } from "./plugins.ts";
import { queryApi } from "./query.ts";
import { rulesApi } from "./rules.ts";
import { serveConsole } from "../console-static.ts";
import { authOf } from "../auth/index.ts";
import { authenticateFirst } from "./authenticate-first.ts";
import { canonicalTagUrl, InvalidTagPath } from "./tag-path.ts";
import { tagsApi } from "./tags.ts";

export type ApiPlugin = (ctx: GatewayContext) => Elysia<any, any, any, any, any, any, any>;

export const apiPlugins: ApiPlugin[] = [healthApi, tagsApi, commandsApi, (ctx) => queryApi(ctx), backupApi, discoverApi, (ctx) => loginApi(ctx), overviewApi, driversApi, rulesApi, alarmsApi, inspectApi, configFilesApi, opcuaCertsApi, pluginsApi];

export function createApi(ctx: GatewayContext) {
  const app = new Elysia();
  app
    .onRequest(async ({ request }) => {
      // the token before the path, the body, the query or the route (./authenticate-first.ts)
      const refused = await authenticateFirst(ctx, request);
      if (refused) return refused;
      // `/api/tags/line1/boiler/temp/history` and `/api/tags/line1%2Fboiler%2Ftemp/history` are one route
      // (and so are alarm ids, which hold their tag: `/api/alarms/line1/boiler/temp:H/ack`):
      // raw slashes are folded into the one encoded segment the routes declare, then routed again
      // (the re-dispatched request's context has no `server`: no route uses it)
      try {
        const to = canonicalTagUrl(request.method, request.url);
        if (to !== null) {
          const again = new Request(to, request);
          authOf(ctx).forward(request, again); // verified above: not again
          return app.handle(again);
        }
      } catch (e) {
        if (!(e instanceof InvalidTagPath)) throw e;
        return Response.json({ error: `invalid_${e.field}`, message: e.message, field: e.field } satisfies ApiError, { status: 400 });
      }
    })
    // every error leaves as JSON in one shape, { error, message, field } (server/api/params.ts); nothing
    // escapes to crash the process
    .onError(async ({ code, error, set, request }): Promise<ApiError | Response> => {
      if (code === "NOT_FOUND") {
        const page = ctx.config.gateway.console.enabled ? await serveConsole(request) : null;
        if (page) return page;
        set.status = 404;
        return { error: "not_found", message: `no such route (the routes are listed at ${OPENAPI_JSON})`, field: null };
      }
      if (code === "VALIDATION" && error.type !== "response") {
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
      if (code === "VALIDATION") {
        // an answer that does not match its documented schema is the gateway's bug, not the client's
        set.status = 500;
        return { error: "internal", message: "the answer did not match its documented schema", field: null };
      }
      set.status = typeof set.status === "number" && set.status >= 400 ? set.status : 500;
      return { error: "internal", message: error instanceof Error ? error.message : String(error), field: null };
    });
  app.use(openapiPlugin());
  app.use(docsPage(API_DOCS, OPENAPI_JSON, async () => (await app.handle(new Request(`http://localhost${OPENAPI_JSON}`))).json()));
  for (const plugin of apiPlugins) app.use(plugin(ctx));
  return app;
}
