// The demo plant: a simulated boiler line served as a PLC over Modbus TCP on loopback. The demo
// config (server/demo/config) polls it with the Modbus driver; tests use it as a real Modbus server
// with set()/get() to put values into registers and read what a master wrote.
import { decodeRegisters, encodeRegisters, type RegisterLayout } from "../../schemas/registers.ts";
import type { Value } from "../../schemas/index.ts";
import type { GatewayContext, Service } from "../context.ts";
import { ModbusTcpServer, type Area } from "./modbus-server.ts";

export interface DemoPlcOptions {
  host?: string;
  port?: number;
  /** initial values and a changing process (default true); off, the banks hold only what set() put there */
  simulate?: boolean;
  tickMs?: number;
  /** registers/bits per area (default 10 000) */
  size?: number;
}

/** The register map of the demo plant (also what server/demo/config/variables.yml maps). */
export const DEMO_MAP = {
  boilerTemperature: { area: "holding", address: 0, type: "float32" },
  boilerPressure: { area: "holding", address: 2, type: "float32", wordOrder: "LE" }, // CDAB, to show word order
  tankTemperature: { area: "holding", address: 4, type: "float32" },
  pumpFlow: { area: "holding", address: 6, type: "int16" }, // 0.1 m3/h per count
  producedCount: { area: "holding", address: 10, type: "uint32" },
  energyWh: { area: "holding", address: 12, type: "int64" },
  boilerSetpoint: { area: "holding", address: 20, type: "float32" },
  pumpSpeedSetpoint: { area: "holding", address: 22, type: "uint16" },
  tankLevelSetpoint: { area: "holding", address: 23, type: "int16" }, // 0.1 % per count
  deviceName: { area: "holding", address: 30, type: "string", length: 8 },
  statusWord: { area: "input", address: 0, type: "uint16" },
  valveOpen: { area: "coil", address: 0, type: "bool" },
  pumpEnable: { area: "coil", address: 1, type: "bool" },
  running: { area: "discrete", address: 0, type: "bool" },
} as const satisfies Record<string, RegisterLayout & { area: Area; address: number }>;

export class DemoPlc {
  readonly server: ModbusTcpServer;
  private timer: ReturnType<typeof setInterval> | null = null;
  private t0 = 0;

  constructor(private readonly opts: DemoPlcOptions = {}) {
    this.server = new ModbusTcpServer({ host: opts.host ?? "127.0.0.1", port: opts.port ?? 0, size: opts.size });
  }

  get port(): number {
    return this.server.port;
  }

  /** Writes a typed value into the banks (bits for coil/discrete). */
  set(area: Area, address: number, layout: RegisterLayout, value: Value): void {
    if (area === "coil" || area === "discrete") {
      (area === "coil" ? this.server.coils : this.server.discrete)[address] = value === true || value === 1 ? 1 : 0;
      return;
    }
    const regs = area === "holding" ? this.server.holding : this.server.input;
    const words = encodeRegisters(value, layout, regs[address]);
    regs.set(words, address);
  }

  /** Reads a typed value from the banks. */
  get(area: Area, address: number, layout: RegisterLayout): Value {
    if (area === "coil" || area === "discrete") return (area === "coil" ? this.server.coils : this.server.discrete)[address] === 1;
    return decodeRegisters(area === "holding" ? this.server.holding : this.server.input, address, layout);
  }

  private setPoint(name: keyof typeof DEMO_MAP, value: Value): void {
    const p = DEMO_MAP[name];
    this.set(p.area, p.address, p, value);
  }

  private getPoint(name: keyof typeof DEMO_MAP): Value {
    const p = DEMO_MAP[name];
    return this.get(p.area, p.address, p);
  }

  async start(): Promise<void> {
    // without the simulation the banks stay as the test set them (all zero by default)
    if (this.opts.simulate !== false) this.initialValues();
    await this.server.start();
    this.t0 = Date.now();
    if (this.opts.simulate !== false) {
      this.timer = setInterval(() => this.tick(), this.opts.tickMs ?? 200);
      this.tick();
    }
  }

  private initialValues(): void {
    this.setPoint("boilerSetpoint", 85);
    this.setPoint("pumpSpeedSetpoint", 1450);
    this.setPoint("tankLevelSetpoint", 600);
    this.setPoint("deviceName", "DEMO-PLC");
    this.setPoint("boilerTemperature", 20);
    this.setPoint("tankTemperature", 20);
    this.setPoint("valveOpen", true);
    this.setPoint("pumpEnable", true);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.server.stop();
  }

  /** One step of the plant: the boiler heats toward its setpoint while the pump runs. */
  private tick(): void {
    const t = (Date.now() - this.t0) / 1000;
    const running = this.getPoint("pumpEnable") === true;
    const valve = this.getPoint("valveOpen") === true;
    const sp = Number(this.getPoint("boilerSetpoint"));
    const temp = Number(this.getPoint("boilerTemperature"));
    const noise = () => (Math.random() - 0.5) * 0.2;
    this.setPoint("boilerTemperature", temp + (running ? (sp - temp) * 0.05 : (20 - temp) * 0.01) + noise());
    this.setPoint("boilerPressure", 1 + Math.max(0, temp - 20) * 0.02 + 0.05 * Math.sin(t / 5));
    this.setPoint("tankTemperature", 40 + 5 * Math.sin(t / 30) + noise());
    const flow = running && valve ? Math.round((Number(this.getPoint("pumpSpeedSetpoint")) / 1450) * 120 + 5 * Math.sin(t / 7)) : 0;
    this.setPoint("pumpFlow", Math.max(-32768, Math.min(32767, flow)));
    if (running) this.setPoint("producedCount", ((Number(this.getPoint("producedCount")) + 1) >>> 0));
    this.setPoint("energyWh", (this.getPoint("energyWh") as bigint) + (running ? 7n : 1n));
    this.setPoint("running", running);
    const alarm = temp > 110;
    this.setPoint("statusWord", (running ? 1 : 0) | (valve ? 2 : 0) | (alarm ? 4 : 0));
  }
}

export function createDemoPlc(opts: DemoPlcOptions = {}): DemoPlc {
  return new DemoPlc(opts);
}

/** The service the gateway starts before its drivers when gateway.yml has `demo.enabled: true`. */
export function demoPlcService(ctx: GatewayContext): Service | null {
  if (!ctx.config.gateway.demo.enabled) return null;
  const plc = createDemoPlc({ host: "127.0.0.1", port: ctx.config.gateway.demo.port });
  return {
    name: "demo-plc",
    start: async () => {
      await plc.start();
      ctx.logger.info({ port: plc.port }, "demo PLC listening (Modbus TCP)");
    },
    stop: () => plc.stop(),
  };
}
