// Example component decoder in JavaScript for the `edge:plugin` world (../../wasm/wit/plugin.wit): the
// same meter telegram as the AssemblyScript example (../assemblyscript/examples/meter-decoder.ts),
// built into a component with the QuickJS backend (build.ts).
import host from "edge:plugin/host@0.1.0";

const NAMES = ["", "energy_import_kwh", "energy_export_kwh", "power_w", "voltage_l1_v", "current_l1_a", "frequency_hz"];
const UNCERTAIN = 0x40000000;

export function apiVersion() {
  return 1;
}

export function decode(payload) {
  const dv = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  if (payload.length < 12 || dv.getUint16(0) !== 0xed01) throw `not a meter telegram (${payload.length} bytes)`;
  const n = dv.getUint8(11);
  if (payload.length < 12 + n * 6) throw `telegram announces ${n} records but has ${payload.length} bytes`;
  const prefix = `meter/${dv.getUint32(2)}/`;
  const ts = dv.getUint32(6) * 1e6;
  const status = dv.getUint8(10);
  const frames = [
    { tag: prefix + "tamper", value: { tag: "boolean", val: (status & 1) !== 0 }, ts, quality: null },
    { tag: prefix + "battery_low", value: { tag: "boolean", val: (status & 2) !== 0 }, ts, quality: null },
  ];
  for (let i = 0; i < n; i++) {
    const at = 12 + i * 6;
    const reg = dv.getUint8(at);
    const value = { tag: "number", val: dv.getInt32(at + 2) * Math.pow(10, dv.getInt8(at + 1)) };
    if (reg > 0 && reg < NAMES.length) frames.push({ tag: prefix + NAMES[reg], value, ts, quality: null });
    else frames.push({ tag: `${prefix}reg${reg}`, value, ts, quality: UNCERTAIN });
  }
  if (frames.length > 8) host.log("debug", `${frames.length} frames from meter ${prefix}`);
  return frames;
}
