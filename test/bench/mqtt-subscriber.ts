// The measuring subscriber of the MQTT benchmark, in its own process so that decoding what it receives
// does not compete with the bridge for the gateway's event loop (the cloud consumer is another machine
// in real life). Usage: bun mqtt-subscriber.ts <url> <topic>; prints {"ready":true} once subscribed,
// then reads the number of frames to expect on stdin and prints {"count","latencies"} (ms, receipt time
// minus frame ts, in arrival order) when that many frames have arrived.
import mqtt from "mqtt";

const [url, topic] = process.argv.slice(2);
if (!url || !topic) throw new Error("usage: mqtt-subscriber.ts <url> <topic>");
const lat: number[] = [];
let expected = Number.POSITIVE_INFINITY;
const client = await mqtt.connectAsync(url, { protocolVersion: 5, clientId: `bench-sub-${process.pid}` });
client.on("message", (_t, payload) => {
  const now = Date.now();
  const body = JSON.parse(payload.toString()) as { frames: { ts: number }[] };
  for (const f of body.frames) lat.push(now - f.ts / 1000);
  if (lat.length >= expected) finish();
});
await client.subscribeAsync(topic, { qos: 1 });
console.log(JSON.stringify({ ready: true }));

let input = "";
const stdin = Bun.stdin.stream().getReader();
while (!input.includes("\n")) {
  const { done, value } = await stdin.read();
  if (done) break;
  input += new TextDecoder().decode(value);
}
expected = Number(input.trim());
if (lat.length >= expected) finish();

function finish(): void {
  process.stdout.write(JSON.stringify({ count: lat.length, latencies: lat }) + "\n", () => {
    void client.endAsync(true).then(() => process.exit(0));
  });
}
