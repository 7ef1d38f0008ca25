// Serves the operations console (console/build/, a static SvelteKit build) at `/`, for every GET that no
// API route answered: the API, /healthz, /readyz and /metrics are routed first, so the console can never
// shadow one of them, and an unknown /api/... path stays a JSON 404. What a static file server must get
// right, in about a screen: the precompressed .br/.gz copies the build wrote (when the browser accepts
// them), immutable caching of the hashed assets under _app/immutable, the SPA fallback page (200.html)
// for client-side routes, 404 for a missing asset, and no way out of the build directory (`..` and its
// percent-encodings are refused before any path is joined).
import { join, normalize, sep } from "node:path";

export const CONSOLE_BUILD_DIR = join(import.meta.dir, "..", "console", "build");

const IMMUTABLE = "public, max-age=31536000, immutable";
const FALLBACK = "200.html";
const ASSET = /\.(m?js|css|map|png|jpe?g|gif|svg|ico|webp|avif|woff2?|ttf|json|txt|webmanifest|wasm)$/i;

const SECURITY_HEADERS = { "x-content-type-options": "nosniff", "x-frame-options": "DENY", "referrer-policy": "no-referrer" };

/** Whether a path is the API's or the health endpoints' (never answered with the console). */
export const isApiPath = (path: string) => path === "/api" || path.startsWith("/api/") || path === "/healthz" || path === "/readyz" || path === "/metrics";

/** The build's files a request path may name: the file itself, or its prerendered page. */
function candidates(rel: string): string[] {
  if (rel === "" || rel.endsWith("/")) return [`${rel}index.html`];
  return [rel, `${rel}.html`];
}

/** The encodings the client accepts, in our order of preference (br is smaller than gzip for JS). */
function encodingsOf(request: Request): Array<[string, string]> {
  const accept = (request.headers.get("accept-encoding") ?? "").toLowerCase();
  const accepted = (name: string) => new RegExp(`(^|[\\s,])${name}(\\s*;\\s*q=(?!0(\\.0*)?\\s*(,|$))[\\d.]+)?\\s*(,|$)`).test(accept);
  const out: Array<[string, string]> = [];
  if (accepted("br")) out.push(["br", ".br"]);
  if (accepted("gzip")) out.push(["gzip", ".gz"]);
  return out;
}

const text = (status: number, body: string) => new Response(body, { status, headers: { "content-type": "text/plain; charset=utf-8", ...SECURITY_HEADERS } });

/**
 * The console's answer to `request`, or null when the request is not the console's (not GET/HEAD, or an
 * API path): the caller answers its own 404 then.
 */
export async function serveConsole(request: Request, buildDir = CONSOLE_BUILD_DIR): Promise<Response | null> {
  if (request.method !== "GET" && request.method !== "HEAD") return null;
  const rawPath = new URL(request.url).pathname;
  if (isApiPath(rawPath)) return null;
  let path: string;
  try {
    path = decodeURIComponent(rawPath);
  } catch {
    return text(400, "bad path: invalid percent-encoding");
  }
  // `..` may arrive percent-encoded (%2e%2e, %2f): checked after decoding, and the joined path must stay inside
  if (path.includes("\0") || path.includes("\\") || path.split("/").includes("..")) return text(400, "bad path: '..' is not allowed");
  const rel = path.replace(/^\/+/, "");
  if (!(await Bun.file(join(buildDir, FALLBACK)).exists())) {
    return text(503, "The console is not built. `npm start` builds it; or run: node console/build.mjs");
  }
  for (const name of candidates(rel)) {
    const file = normalize(join(buildDir, name));
    if (!file.startsWith(buildDir + sep)) return text(400, "bad path");
    if (await Bun.file(file).exists()) return await fileResponse(request, file, name.startsWith("_app/immutable/") ? IMMUTABLE : "no-cache");
  }
  // a missing script or image is a 404, never the HTML page (a browser would try to run it as JS); other
  // paths are the app's routes, tag names with dots included (/tags/line1/meter.kwh)
  if (rel.startsWith("_app/") || ASSET.test(rel)) return text(404, `no such file: /${rel}`);
  return await fileResponse(request, join(buildDir, FALLBACK), "no-cache");
}

async function fileResponse(request: Request, file: string, cacheControl: string): Promise<Response> {
  const plain = Bun.file(file);
  const headers: Record<string, string> = { "content-type": plain.type, "cache-control": cacheControl, vary: "accept-encoding", ...SECURITY_HEADERS };
  let body = plain;
  for (const [encoding, suffix] of encodingsOf(request)) {
    const packed = Bun.file(file + suffix);
    if (await packed.exists()) {
      body = packed;
      headers["content-encoding"] = encoding;
      break;
    }
  }
  headers["content-length"] = String(body.size);
  return new Response(request.method === "HEAD" ? null : body, { status: 200, headers });
}
