// EngineeringUnits of AnalogItems: a tag's `unit` text -> EUInformation with the UN/CEFACT Recommendation
// 20 common code as UnitId (OPC 10000-8 §5.6.3: the code's ASCII characters packed into an Int32,
// node-opcua's makeEUInformation), so that SCADA clients can identify the unit, not only display it.
// A unit not in the table keeps its text as DisplayName and UnitId -1 ("not available", per the spec).
// Pure data, no I/O.
import { makeEUInformation, type EUInformation } from "node-opcua";

/** [UNECE common code, display symbol, description]; keys are the spellings accepted in variables.yml. */
type UnitRow = readonly [code: string, symbol: string, name: string];

const ROWS: Record<string, UnitRow> = {
  // temperature
  degC: ["CEL", "°C", "degree Celsius"],
  "°C": ["CEL", "°C", "degree Celsius"],
  degF: ["FAH", "°F", "degree Fahrenheit"],
  "°F": ["FAH", "°F", "degree Fahrenheit"],
  K: ["KEL", "K", "kelvin"],
  // pressure
  bar: ["BAR", "bar", "bar [unit of pressure]"],
  mbar: ["MBR", "mbar", "millibar"],
  Pa: ["PAL", "Pa", "pascal"],
  hPa: ["A97", "hPa", "hectopascal"],
  kPa: ["KPA", "kPa", "kilopascal"],
  MPa: ["MPA", "MPa", "megapascal"],
  psi: ["PS", "psi", "pound-force per square inch"],
  // ratio
  "%": ["P1", "%", "percent"],
  ppm: ["59", "ppm", "part per million"],
  // flow
  "m3/h": ["MQH", "m³/h", "cubic metre per hour"],
  "m³/h": ["MQH", "m³/h", "cubic metre per hour"],
  "m3/min": ["G53", "m³/min", "cubic metre per minute"],
  "m3/s": ["MQS", "m³/s", "cubic metre per second"],
  "l/min": ["L2", "l/min", "litre per minute"],
  "l/h": ["E32", "l/h", "litre per hour"],
  "l/s": ["G51", "l/s", "litre per second"],
  "kg/h": ["E93", "kg/h", "kilogram per hour"],
  "kg/s": ["KGS", "kg/s", "kilogram per second"],
  "t/h": ["E18", "t/h", "tonne per hour"],
  // power and energy
  W: ["WTT", "W", "watt"],
  kW: ["KWT", "kW", "kilowatt"],
  MW: ["MAW", "MW", "megawatt"],
  Wh: ["WHR", "W·h", "watt hour"],
  kWh: ["KWH", "kW·h", "kilowatt hour"],
  MWh: ["MWH", "MW·h", "megawatt hour (1000 kW.h)"],
  J: ["JOU", "J", "joule"],
  kJ: ["KJO", "kJ", "kilojoule"],
  VA: ["D46", "V·A", "volt - ampere"],
  kVA: ["KVA", "kV·A", "kilovolt - ampere"],
  var: ["D44", "var", "var"],
  kvar: ["KVR", "kvar", "kilovar"],
  // electrical
  V: ["VLT", "V", "volt"],
  mV: ["2Z", "mV", "millivolt"],
  kV: ["KVT", "kV", "kilovolt"],
  A: ["AMP", "A", "ampere"],
  mA: ["4K", "mA", "milliampere"],
  Ohm: ["OHM", "Ω", "ohm"],
  Hz: ["HTZ", "Hz", "hertz"],
  kHz: ["KHZ", "kHz", "kilohertz"],
  // speed and rotation
  rpm: ["RPM", "r/min", "revolutions per minute"],
  "r/min": ["RPM", "r/min", "revolutions per minute"],
  "m/s": ["MTS", "m/s", "metre per second"],
  "km/h": ["KMH", "km/h", "kilometre per hour"],
  // length, volume, mass
  m: ["MTR", "m", "metre"],
  cm: ["CMT", "cm", "centimetre"],
  mm: ["MMT", "mm", "millimetre"],
  km: ["KTM", "km", "kilometre"],
  m3: ["MTQ", "m³", "cubic metre"],
  "m³": ["MTQ", "m³", "cubic metre"],
  l: ["LTR", "l", "litre"],
  g: ["GRM", "g", "gram"],
  kg: ["KGM", "kg", "kilogram"],
  t: ["TNE", "t", "tonne (metric ton)"],
  N: ["NEW", "N", "newton"],
  Nm: ["NU", "N·m", "newton metre"],
  // time
  s: ["SEC", "s", "second [unit of time]"],
  ms: ["C26", "ms", "millisecond"],
  min: ["MIN", "min", "minute [unit of time]"],
  h: ["HUR", "h", "hour"],
  // other
  deg: ["DD", "°", "degree [unit of angle]"],
  lx: ["LUX", "lx", "lux"],
  dB: ["2N", "dB", "decibel"],
};

/** Common codes of the table, by the unit's text (for tests and documentation). */
export const UNECE_CODE: Readonly<Record<string, string>> = Object.fromEntries(Object.entries(ROWS).map(([k, r]) => [k, r[0]]));

/** The EngineeringUnits value of a tag's unit: UNECE UnitId when known, else UnitId -1 with the text as DisplayName. */
export function engineeringUnits(unit: string): EUInformation {
  const row = ROWS[unit];
  if (row) return makeEUInformation(row[0], row[1], row[2]);
  const eu = makeEUInformation("", unit, unit);
  eu.unitId = -1;
  return eu;
}
