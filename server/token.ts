// Mints an HS256 JWT for the gateway's API, for operators and scripts (`npm run token -- --sub alice`).
//   --sub <name>        who (recorded as the actor of writes)            default: $USER or "operator"
//   --tenant <tenant>   tenant of the tags the token may touch            default: "default"
//   --scope "<s ...>"   space-separated: read, write                      default: "read write"
//   --tags <p,p,...>    optional tag patterns (* within a segment, ** across)
//   --ttl <seconds>     lifetime                                          default: 3600
//   --secret <s>        the gateway's auth.hs256Secret                    default: $EDGE_JWT_SECRET
// Prints the token on stdout; errors go to stderr with a non-zero exit.
import { parseArgs } from "node:util";
import { SignJWT } from "jose";

const { values } = parseArgs({
  options: {
    sub: { type: "string", default: process.env.USER || "operator" },
    tenant: { type: "string", default: "default" },
    scope: { type: "string", default: "read write" },
    tags: { type: "string" },
    ttl: { type: "string", default: "3600" },
    secret: { type: "string", default: process.env.EDGE_JWT_SECRET ?? "" },
  },
});

const fail = (message: string): never => {
  console.error(`token: ${message}`);
  process.exit(2);
};
if (values.secret.length < 32) fail("--secret (or EDGE_JWT_SECRET) must hold the gateway's HS256 secret, at least 32 characters");
const ttl = Number(values.ttl);
if (!Number.isInteger(ttl) || ttl <= 0) fail(`--ttl must be a positive number of seconds, got '${values.ttl}'`);

const claims: Record<string, unknown> = { tenant: values.tenant, scope: values.scope };
if (values.tags !== undefined) claims.tags = values.tags.split(",").map((t) => t.trim()).filter(Boolean);
const token = await new SignJWT(claims)
  .setProtectedHeader({ alg: "HS256", typ: "JWT" })
  .setSubject(values.sub)
  .setIssuedAt()
  .setExpirationTime(Math.floor(Date.now() / 1000) + ttl)
  .sign(new TextEncoder().encode(values.secret));
console.log(token);
