// The catalog of the alarm crash test (child and parent): 50 tags with an H alarm at 50, no deadband, no delay.
export const crashTags = () =>
  Array.from({ length: 50 }, (_, i) => ({ tag: `c/t${i}`, driver: "sim", type: "float64", group: "default", scale: 1, offset: 0, deadband: 0, access: "R", tenant: "default", alarms: { H: { limit: 50 }, deadband: 0, onDelayMs: 0, offDelayMs: 0 } }));
