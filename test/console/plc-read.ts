// Reads the demo PLC's registers from a test, as any Modbus master would (not through the gateway), to
// check what a write from the console really changed in the device.
import ModbusRTU from "modbus-serial";
import { decodeRegisters, type RegisterLayout } from "../../schemas/registers.ts";
import type { TestGateway } from "../helpers/gateway.ts";

/** The typed value at a holding register of the PLC behind the demo endpoint `demo-plc`. */
export async function readPlc(g: TestGateway, address: number, layout: RegisterLayout): Promise<unknown> {
  const url = new URL(g.gw.ctx.config.endpoints["demo-plc"]!.url);
  const m = new ModbusRTU();
  await m.connectTCP(url.hostname, { port: Number(url.port) });
  try {
    m.setID(1);
    m.setTimeout(2000);
    const { data } = await m.readHoldingRegisters(address, layout.type.endsWith("64") ? 4 : layout.type.endsWith("32") ? 2 : 1);
    return decodeRegisters(data, 0, layout);
  } finally {
    await new Promise<void>((r) => m.close(() => r()));
  }
}
