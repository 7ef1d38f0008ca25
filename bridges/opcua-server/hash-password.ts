// Prints the hash of a password for gateway.yml (opcua.users[].passwordHash):
//   npm run edgectl -- hash-password 'secret'     or     echo -n secret | npm run edgectl -- hash-password
//   (also: bun bridges/opcua-server/hash-password.ts 'secret')
import { hashPassword } from "./security.ts";

export const HASH_PASSWORD_USAGE = `usage: npm run edgectl -- hash-password <password>     (or the password on stdin)
Prints the hash to paste as opcua.users[].passwordHash in gateway.yml (the password itself is never stored).`;

/** `hash-password` as a command: prints the PHC string (exit 0), or the usage (exit 0 for --help, 2 without a password). */
export async function hashPasswordCommand(args: string[], stdin: () => Promise<string> = () => Bun.stdin.text()): Promise<number> {
  if (args[0] === "--help" || args[0] === "-h") {
    console.log(HASH_PASSWORD_USAGE);
    return 0;
  }
  const password = args[0] ?? (await stdin()).replace(/\r?\n$/, "");
  if (!password) {
    console.error(HASH_PASSWORD_USAGE);
    return 2;
  }
  console.log(await hashPassword(password));
  return 0;
}

if (import.meta.main) process.exit(await hashPasswordCommand(process.argv.slice(2)));
