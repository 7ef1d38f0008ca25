// The OPC UA server's client certificates over HTTP (bridges/opcua-server/certificates.ts does the work):
// GET /api/opcua/certificates (scope read: subjects, thumbprints and validity, no tag data) and
// POST /api/opcua/certificates/:thumbprint/trust (scope admin: it lets a client open secure channels).
// 409 when the gateway's OPC UA server is not running (gateway.yml opcua.enabled).
import { Elysia, t } from "elysia";
import { errorAnswers } from "../../schemas/api.ts";
import { OpcuaServerBridge, UnknownCertificate } from "../../bridges/opcua-server/index.ts";
import { authOf, authPlugin } from "../auth/index.ts";
import type { GatewayContext } from "../context.ts";
import { authorize, OpsRefusal, refusal } from "./guard.ts";

const Certificate = t.Object({
  kind: t.Union([t.Literal("application"), t.Literal("user")], { description: "application instance certificate, or X509 user identity" }),
  store: t.Union([t.Literal("trusted"), t.Literal("rejected")]),
  thumbprint: t.String({ description: "SHA-1 of the DER, lower-case hex" }),
  subject: t.String(),
  issuer: t.String(),
  applicationUri: t.Union([t.String(), t.Null()]),
  notBefore: t.String(),
  notAfter: t.String(),
  expired: t.Boolean(),
  file: t.String(),
});

/** The running OPC UA server bridge, or a 409 saying how to turn it on. */
function opcuaServer(ctx: GatewayContext): OpcuaServerBridge {
  const bridge = ctx.services?.().find((s): s is OpcuaServerBridge => s instanceof OpcuaServerBridge);
  if (!bridge) throw new OpsRefusal(409, "opcua_disabled", "the OPC UA server is not running (gateway.yml opcua.enabled)");
  return bridge;
}

export function opcuaCertsApi(ctx: GatewayContext) {
  const verifier = authOf(ctx);
  return new Elysia({ name: "opcua-certs" })
    .use(authPlugin(verifier))
    .get(
      "/api/opcua/certificates",
      async ({ set, principal }) => {
        try {
          await authorize(verifier, principal, "read", "listing certificates");
          return opcuaServer(ctx).certificates();
        } catch (e) {
          return refusal(set, e);
        }
      },
      {
        response: { 200: t.Array(Certificate), ...errorAnswers(401, 403, 409) },
        detail: { tags: ["bridges"], summary: "The OPC UA server's trusted and rejected client certificates, rejected first (JWT scope read)" },
      },
    )
    .post(
      "/api/opcua/certificates/:thumbprint/trust",
      async ({ params, set, principal }) => {
        try {
          const who = await authorize(verifier, principal, "admin", "trusting a certificate");
          const c = await opcuaServer(ctx)
            .trust(params.thumbprint)
            .catch((e) => {
              throw e instanceof UnknownCertificate ? new OpsRefusal(404, "unknown_certificate", e.message, "thumbprint") : e;
            });
          ctx.logger.info({ thumbprint: c.thumbprint, subject: c.subject, by: who.sub }, "opcua client certificate trusted through the API");
          return c;
        } catch (e) {
          return refusal(set, e);
        }
      },
      {
        params: t.Object({ thumbprint: t.String({ pattern: "^[0-9a-fA-F:]{40,59}$", description: "SHA-1 thumbprint, hex (colons allowed)" }) }),
        response: { 200: Certificate, ...errorAnswers(400, 401, 403, 404, 409) },
        detail: { tags: ["bridges"], summary: "Trust a rejected OPC UA client certificate: that client's next connect is accepted; needs the 'admin' scope" },
      },
    );
}
