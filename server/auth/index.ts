// Authentication for the API: the gateway's live TokenVerifier (from gateway.yml `auth:`, replaced on
// reload), and an Elysia plugin that gives routes `principal()` (verified lazily, so routes that need
// no token pay nothing).
import { Elysia } from "elysia";
import type { Principal } from "./verify.ts";

export * from "./live.ts";
export * from "./verify.ts";

export function authPlugin(verifier: { verifyHeader(authorization: string | undefined): Promise<Principal> }) {
  return new Elysia({ name: "auth" }).derive({ as: "scoped" }, ({ headers }) => {
    let p: Promise<Principal> | null = null;
    return { principal: (): Promise<Principal> => (p ??= verifier.verifyHeader(headers.authorization)) };
  });
}
