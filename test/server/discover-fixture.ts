// Shared by the discover tests: a command run with its console output swallowed (it prints what it wrote).
export async function silenced<T>(f: () => Promise<T>): Promise<T> {
  const { log, error } = console;
  console.log = console.error = () => undefined;
  try {
    return await f();
  } finally {
    Object.assign(console, { log, error });
  }
}
