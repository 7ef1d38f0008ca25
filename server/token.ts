// Mints an HS256 JWT for the gateway's API, for operators and scripts (`npm run edgectl -- token --sub
// alice`, or `npm run token -- ...`). Prints the token on stdout; errors go to stderr with exit code 2.
import { parseArgs } from "node:util";
import { SignJWT } from "jose";

export const TOKEN_USAGE = `usage: npm run edgectl -- token [options]      (also: npm run token -- [options])
Mints an HS256 token for the gateway's API and prints it.
  --sub <name>        who (recorded as the actor of writes)            default: $USER or "operator"
  --tenant <tenant>   tenant of the tags the token may touch            default: "default"
  --scope "<s ...>"   space-separated: read, write                      default: "read write"
  --tags <p,p,...>    optional tag patterns (* within a segment, ** across)
  --ttl <seconds>     lifetime                                          default: 3600
  --secret <s>        the gateway's auth.hs256Secret                    default: $EDGE_JWT_SECRET
  -h, --help          this text`;

/** A refusal of the command line: printed as one line, never a stack trace. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** The token for `args`; throws UsageError on a bad option. */
export async function mintToken(args: string[]): Promise<string> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        sub: { type: "string", default: process.env.USER || "operator" },
        tenant: { type: "string", default: "default" },
        scope: { type: "string", default: "read write" },
        tags: { type: "string" },
        ttl: { type: "string", default: "3600" },
        secret: { type: "string", default: process.env.EDGE_JWT_SECRET ?? "" },
      },
    }));
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (values.secret.length < 32) throw new UsageError("--secret (or EDGE_JWT_SECRET) must hold the gateway's HS256 secret, at least 32 characters");
  const ttl = Number(values.ttl);
  if (!Number.isInteger(ttl) || ttl <= 0) throw new UsageError(`--ttl must be a positive number of seconds, got '${values.ttl}'`);
  const claims: Record<string, unknown> = { tenant: values.tenant, scope: values.scope };
  if (values.tags !== undefined) claims.tags = values.tags.split(",").map((t) => t.trim()).filter(Boolean);
  return await new SignJWT(claims)
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(values.sub)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttl)
    .sign(new TextEncoder().encode(values.secret));
}

/** `token` as a command: prints the token (exit 0), the usage (--help, exit 0) or the refusal (exit 2). */
export async function tokenCommand(args: string[]): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    console.log(TOKEN_USAGE);
    return 0;
  }
  try {
    console.log(await mintToken(args));
    return 0;
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    console.error(`token: ${e.message} (see --help)`);
    return 2;
  }
}

if (import.meta.main) process.exit(await tokenCommand(process.argv.slice(2)));
