// Prints the hash of a password for gateway.yml (opcua.users[].passwordHash):
//   bun bridges/opcua-server/hash-password.ts 'secret'      or      echo -n secret | bun bridges/opcua-server/hash-password.ts
import { hashPassword } from "./security.ts";

const fromArg = process.argv[2];
const password = fromArg ?? (await Bun.stdin.text()).replace(/\r?\n$/, "");
if (!password) {
  console.error("usage: bun bridges/opcua-server/hash-password.ts <password>   (or the password on stdin)");
  process.exit(2);
}
console.log(await hashPassword(password));
