// Named errors of the driver area.
export class DriverConfigError extends Error {
  override name = "DriverConfigError";
  constructor(
    readonly driverId: string,
    readonly path: string,
    message: string,
  ) {
    super(`driver '${driverId}': ${path ? `${path}: ` : ""}${message}`);
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
