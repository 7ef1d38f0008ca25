// Demo rule (bridges/rules/README.md): the boiler temperature in °F as a derived tag, and an alarm while
// the boiler is above 90 °C. Edit it in the console's Rules page or here: the gateway reloads it.
export const meta = {
  description: "boiler temperature in Fahrenheit; alarm above 90 °C",
  triggers: ["line1/boiler/temperature"],
  sets: ["line1/boiler/temperature_f"],
};

export function onMessage(msg) {
  if (msg.quality !== 0) return; // a Bad or Uncertain reading is not turned into a Good derived value
  setTag("line1/boiler/temperature_f", Math.round((msg.value * 9 / 5 + 32) * 10) / 10);
  if (msg.value > 90 && !state.hot) {
    state.hot = true;
    raiseAlarm("boiler-hot", { priority: "high", message: `boiler at ${msg.value.toFixed(1)} °C` });
  } else if (msg.value <= 88 && state.hot) {
    state.hot = false;
    clearAlarm("boiler-hot");
  }
}
