// Authentication for the API: a TokenVerifier from gateway.yml `auth:`, and an Elysia plugin that
// gives routes `principal()` (verified lazily, so routes that need no token pay nothing).
import { Elysia } from "elysia";
import { TokenVerifier, type Principal } from "./verify.ts";

export * from "./verify.ts";

export function authPlugin(verifier: TokenVerifier) {
  return new Elysia({ name: "auth" }).derive({ as: "scoped" }, ({ headers }) => {
    let p: Promise<Principal> | null = null;
    return { principal: (): Promise<Principal> => (p ??= verifier.verifyHeader(headers.authorization)) };
  });
}
