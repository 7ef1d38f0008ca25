// Authentication for the API: the gateway's live TokenVerifier (from gateway.yml `auth:`, replaced on
// reload), and an Elysia plugin that gives routes `principal()` (the request's verification, made once
// by the API's first hook, or lazily here, so routes that need no token pay nothing).
import { Elysia } from "elysia";
import type { Principal } from "./verify.ts";

export * from "./live.ts";
export * from "./verify.ts";

export function authPlugin(verifier: { verifyRequest(request: Request): Promise<Principal> }) {
  return new Elysia({ name: "auth" }).derive({ as: "scoped" }, ({ request }) => ({ principal: (): Promise<Principal> => verifier.verifyRequest(request) }));
}
