// Example decoder: an electricity meter's binary telegram (as an MQTT payload) into one frame per register.
// Telegram, big-endian:
//   0 u16 magic 0xED01 | 2 u32 meter id | 6 u32 reading time (s since epoch) | 10 u8 status
//   (bit 0 tamper, bit 1 battery low) | 11 u8 record count N | N records of 6 bytes:
//   u8 register | i8 decimal exponent | i32 raw value  (value = raw * 10^exponent)
// Tags: meter/<id>/<register name>; an unknown register gives meter/<id>/reg<n>, quality Uncertain.
import { FrameWriter, log, Level, REFUSED } from "../assembly/edge";
export { alloc, dealloc, api_version } from "../assembly/edge";

const out = new FrameWriter();
const NAMES: string[] = ["", "energy_import_kwh", "energy_export_kwh", "power_w", "voltage_l1_v", "current_l1_a", "frequency_hz"];
const UNCERTAIN: u32 = 0x40000000;

function be16(p: usize): u32 {
  return (u32(load<u8>(p)) << 8) | u32(load<u8>(p, 1));
}

function be32(p: usize): u32 {
  return bswap<u32>(load<u32>(p));
}

export function decode(ptr: usize, len: i32): i64 {
  if (len < 12 || be16(ptr) != 0xed01) {
    log(Level.Error, "not a meter telegram (" + len.toString() + " bytes)");
    return REFUSED;
  }
  const n = i32(load<u8>(ptr, 11));
  if (len < 12 + n * 6) {
    log(Level.Error, "telegram announces " + n.toString() + " records but has " + len.toString() + " bytes");
    return REFUSED;
  }
  const ts = f64(be32(ptr + 6)) * 1e6;
  const status = load<u8>(ptr, 10);
  out.begin("meter/" + be32(ptr + 2).toString() + "/");
  out.bool("tamper", (status & 1) != 0).ts(ts);
  out.bool("battery_low", (status & 2) != 0).ts(ts);
  for (let i = 0; i < n; i++) {
    const r = ptr + 12 + i * 6;
    const reg = i32(load<u8>(r));
    const value = f64(i32(be32(r + 2))) * Math.pow(10, f64(load<i8>(r, 1)));
    if (reg > 0 && reg < NAMES.length) out.f64(NAMES[reg], value).ts(ts);
    else out.f64("reg" + reg.toString(), value).ts(ts).quality(UNCERTAIN);
  }
  return out.finish();
}
