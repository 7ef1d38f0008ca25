// Named errors of the driver area.
export class DriverConfigError extends Error {
  override name = "DriverConfigError";
  constructor(
    readonly driverId: string,
    readonly path: string,
    message: string,
    /** further problems of the same config, each at its own path (the config check lists them all) */
    readonly also: ReadonlyArray<{ path: string; message: string }> = [],
  ) {
    super(`driver '${driverId}': ${path ? `${path}: ` : ""}${message}${also.length ? ` (and ${also.length} more: ${also.map((p) => p.path).join(", ")})` : ""}`);
  }

  /** The detail of the first problem, without the driver's and the path's prefix nor the count of the others. */
  get detail(): string {
    const prefix = `driver '${this.driverId}': ${this.path ? `${this.path}: ` : ""}`;
    const text = this.message.startsWith(prefix) ? this.message.slice(prefix.length) : this.message;
    return this.also.length ? text.slice(0, text.lastIndexOf(" (and ")) : text;
  }
}

export class DriverError extends Error {
  override name = "DriverError";
  constructor(
    readonly driverId: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`driver '${driverId}': ${message}`, options);
  }
}

export class EndpointError extends Error {
  override name = "EndpointError";
}
