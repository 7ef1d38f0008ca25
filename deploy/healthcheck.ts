// Container health check: exit 0 when the gateway answers /readyz with 200 (every component ok), 1 otherwise.
// Run with Bun so the image needs no curl: `bun deploy/healthcheck.ts` (port: $EDGE_HTTP_PORT or 8080).
const port = process.env.EDGE_HTTP_PORT || "8080";
try {
  const res = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(4000) });
  if (!res.ok) console.error(`readyz answered ${res.status}: ${(await res.text()).slice(0, 500)}`);
  process.exit(res.ok ? 0 : 1);
} catch (e) {
  console.error(`readyz unreachable on port ${port}: ${(e as Error).message}`);
  process.exit(1);
}
