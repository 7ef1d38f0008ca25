// One raw register read through a Modbus driver's own link, for the console's inspector: the same pooled
// connection (or RTU line with its one-request-at-a-time schedule) the driver polls with, so an inspection
// never opens a second connection to a device that allows one, and the endpoint's timeout bounds it.
// When the driver is not running, the link is opened for this one read and closed after it.
import type { Endpoint } from "../endpoint.ts";
import { DriverConfigError } from "../errors.ts";
import { parseDriverConfig } from "../validate.ts";
import { ModbusConfig } from "./config.ts";
import { linkOf } from "./index.ts";

export interface InspectRequest {
  area: "holding" | "input";
  address: number;
  count: number;
  /** default: the driver's `unitId` */
  unitId?: number;
}

export interface InspectAnswer {
  unitId: number;
  registers: number[];
  durationMs: number;
}

/** Reads `count` registers from `address` through the link of a Modbus driver (its id and `config:` block). */
export async function inspectRegisters(driverId: string, config: unknown, endpoint: Endpoint | undefined, req: InspectRequest): Promise<InspectAnswer> {
  const cfg = parseDriverConfig(driverId, ModbusConfig, config);
  if (!endpoint) throw new DriverConfigError(driverId, "endpoint", "the driver has no endpoint");
  const link = linkOf(endpoint);
  if (typeof link === "string") throw new DriverConfigError(driverId, "endpoint", link);
  const unitId = req.unitId ?? cfg.unitId;
  const lease = await endpoint.pool.acquire(link.key, link.open, (c) => c.close());
  const started = performance.now();
  try {
    const registers = await lease.value.readRegisters(unitId, req.area, req.address, req.count);
    return { unitId, registers, durationMs: Math.round((performance.now() - started) * 10) / 10 };
  } finally {
    await lease.release();
  }
}
