// ConfigError: a configuration value that is wrong, with the file, the path inside it and what was
// expected. Thrown by whoever validates (server config loader, bridges and drivers for their sections).
export class ConfigError extends Error {
  override name = "ConfigError";
  constructor(
    readonly file: string,
    readonly path: string,
    readonly detail: string,
  ) {
    super(`${file}${path ? ` at ${path}` : ""}: ${detail}`);
  }
}
