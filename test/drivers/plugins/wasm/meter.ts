// Meter telegrams for the example decoder (drivers/plugins/sdk/assemblyscript/examples/meter-decoder.ts).
export interface MeterRecord {
  register: number;
  exponent: number;
  raw: number;
}

export function meterTelegram(id: number, seconds: number, status: number, records: MeterRecord[]): Uint8Array {
  const b = new Uint8Array(12 + records.length * 6);
  const dv = new DataView(b.buffer);
  dv.setUint16(0, 0xed01);
  dv.setUint32(2, id);
  dv.setUint32(6, seconds);
  dv.setUint8(10, status);
  dv.setUint8(11, records.length);
  records.forEach((r, i) => {
    dv.setUint8(12 + i * 6, r.register);
    dv.setInt8(13 + i * 6, r.exponent);
    dv.setInt32(14 + i * 6, r.raw);
  });
  return b;
}

/** A realistic telegram: six registers (import/export energy, power, voltage, current, frequency). */
export const SAMPLE_TELEGRAM = meterTelegram(40_123, 1_764_633_600, 2, [
  { register: 1, exponent: -2, raw: 1_234_567 },
  { register: 2, exponent: -2, raw: 4_500 },
  { register: 3, exponent: 0, raw: -1_520 },
  { register: 4, exponent: -1, raw: 2_301 },
  { register: 5, exponent: -3, raw: 6_612 },
  { register: 6, exponent: -2, raw: 4_998 },
]);
export const SAMPLE_FRAMES_PER_TELEGRAM = 8;
