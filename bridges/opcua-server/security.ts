// Security of the OPC UA server: the PKI folder (server certificate, trusted and rejected client
// certificates), the endpoints' policies and modes, user authentication against hashed passwords,
// and the roles that decide who may read and who may write.
import { join } from "node:path";
import {
  MessageSecurityMode,
  OPCUACertificateManager,
  SecurityPolicy,
  WellKnownRoles,
  X509IdentityToken,
  makeRoles,
  PermissionFlag,
  type NodeId,
  type RolePermissionTypeOptions,
  type UserManagerOptions,
} from "node-opcua";
import type { OpcuaServerConfig, Right } from "./config.ts";

/** A write needs the Operator role; reading needs Observer (or Anonymous when anonymous reads are allowed). */
export const READ_ROLE = WellKnownRoles.Observer;
export const WRITE_ROLE = WellKnownRoles.Operator;

const READ = PermissionFlag.Browse | PermissionFlag.Read | PermissionFlag.ReceiveEvents;

/**
 * RolePermissions of every tag variable. node-opcua evaluates the Anonymous role for every session,
 * so Anonymous must never hold Write; it holds Read only when anonymous reads are configured.
 */
export function tagRolePermissions(allowAnonymous: boolean): RolePermissionTypeOptions[] {
  return [
    { roleId: WellKnownRoles.Anonymous, permissions: allowAnonymous ? READ : PermissionFlag.Browse },
    { roleId: WellKnownRoles.AuthenticatedUser, permissions: PermissionFlag.Browse },
    { roleId: READ_ROLE, permissions: READ },
    { roleId: WRITE_ROLE, permissions: READ | PermissionFlag.Write },
  ];
}

export function rolesFor(rights: readonly Right[]): NodeId[] {
  const roles: WellKnownRoles[] = [];
  if (rights.includes("read") || rights.includes("write")) roles.push(READ_ROLE);
  if (rights.includes("write")) roles.push(WRITE_ROLE);
  return makeRoles(roles);
}

/** Checks user names and passwords against the configured hashes (argon2id/bcrypt through Bun.password). */
export function userManager(cfg: OpcuaServerConfig): UserManagerOptions {
  const users = new Map(cfg.users.map((u) => [u.name, u]));
  return {
    isValidUserAsync(username: string, password: string, callback: (err: Error | null, ok?: boolean) => void) {
      const u = users.get(username);
      if (!u) return callback(null, false);
      Bun.password.verify(password, u.passwordHash).then(
        (ok) => callback(null, ok),
        // a malformed hash in the config refuses the login instead of crashing the session
        () => callback(null, false),
      );
    },
    getUserRoles(username: string): NodeId[] {
      const u = users.get(username);
      return u ? rolesFor(u.rights) : [];
    },
  };
}

/** Sessions authenticated with a trusted X509 user certificate get `certificateUserRights`. */
export function certificateRoleResolver(cfg: OpcuaServerConfig) {
  const roles = rolesFor(cfg.certificateUserRights);
  return { resolveRoles: (token: unknown): NodeId[] => (token instanceof X509IdentityToken ? roles : []) };
}

export interface Pki {
  /** application instance certificates: own/ (server cert and key), trusted/, rejected/, issuers/ */
  server: OPCUACertificateManager;
  /** X509 user identity certificates: trusted/ and rejected/ */
  users: OPCUACertificateManager;
  dir: string;
}

export function pkiFolders(cfg: OpcuaServerConfig, dataDir: string): Pki {
  const dir = cfg.pkiDir ?? join(dataDir, "pki", "opcua-server");
  const accept = cfg.autoAcceptUnknownCertificates;
  return {
    dir,
    server: new OPCUACertificateManager({ rootFolder: dir, automaticallyAcceptUnknownCertificate: accept }),
    users: new OPCUACertificateManager({ rootFolder: join(dir, "users"), automaticallyAcceptUnknownCertificate: accept }),
  };
}

export function securityPolicies(cfg: OpcuaServerConfig): SecurityPolicy[] {
  return cfg.securityPolicies.map((p) => (p === "None" ? SecurityPolicy.None : SecurityPolicy.Basic256Sha256));
}

export function securityModes(cfg: OpcuaServerConfig): MessageSecurityMode[] {
  return cfg.securityModes.map((m) => MessageSecurityMode[m]);
}

/** `bun bridges/opcua-server/hash-password.ts` uses this: the PHC string to put in opcua.users[].passwordHash. */
export function hashPassword(password: string): Promise<string> {
  return Bun.password.hash(password, { algorithm: "argon2id" });
}
