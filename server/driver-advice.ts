// A driver's state and last error in plain words, with what to do: the Devices page shows this instead of
// a stack of socket errors. Pure: matched on the error text's well-known parts (Node's socket error codes,
// Modbus exception names, OPC UA status names), the state machine's states otherwise.
export interface DriverAdvice {
  /** what is wrong, for people */
  words: string;
  /** what to check or change, first thing first */
  todo: string;
}

const BY_ERROR: Array<[RegExp, DriverAdvice]> = [
  [/ECONNREFUSED|connection refused/i, { words: "The device refused the connection: nothing listens at that address and port.", todo: "Check the endpoint's host and port in endpoints.yml, and that the device (or its Modbus TCP / OPC UA server) is switched on." }],
  [/EHOSTUNREACH|ENETUNREACH|no route to host/i, { words: "The device's network cannot be reached from the gateway.", todo: "Check the cable, switch and VLAN, the device's IP address, and the gateway's route to that subnet." }],
  [/ENOTFOUND|EAI_AGAIN|getaddrinfo/i, { words: "The device's host name does not resolve.", todo: "Check the host name in endpoints.yml, or use the device's IP address." }],
  [/ECONNRESET|EPIPE|socket hang up|closed the connection/i, { words: "The device dropped the connection.", todo: "Check whether the device accepts this many connections (many PLCs allow only a few), and its unit id." }],
  [/timed? ?out|ETIMEDOUT|Bad_Timeout|did not answer/i, { words: "The device did not answer in time.", todo: "Check the network path and the device's IP; if the link is slow, raise timeoutMs of the endpoint in endpoints.yml." }],
  [/illegal data address|exception 2\b|exception code 2\b/i, { words: "The device has no register at an address the tags read.", todo: "Check the addresses in variables.yml (they are 0-based: holding register 40001 is address 0) and the register area." }],
  [/illegal function|exception 1\b|exception code 1\b/i, { words: "The device does not support the function the gateway asked for.", todo: "Check the register area of the tags (holding, input, coil, discrete) against the device's manual." }],
  [/illegal data value|exception 3\b/i, { words: "The device refused a request's values (often too many registers at once).", todo: "Lower maxGap or split the tags into smaller groups in drivers.yml." }],
  [/gateway target|exception 1[01]\b/i, { words: "A Modbus gateway in between could not reach the device.", todo: "Check the unit id (unitId in drivers.yml) and the serial side of the Modbus gateway." }],
  [/certificate|BadCertificate|Bad_Certificate|untrusted/i, { words: "The OPC UA server does not trust the gateway's certificate (or the gateway not the server's).", todo: "Trust the gateway's certificate on the server (its 'rejected' folder) and the server's in the gateway's PKI folder." }],
  [/BadUserAccessDenied|Bad_UserAccessDenied|BadIdentityToken|password/i, { words: "The OPC UA server refused the user name or password.", todo: "Check the user and password of the endpoint." }],
  [/unknown driver type|config|invalid/i, { words: "The driver's configuration is not valid.", todo: "Run `npm run edgectl -- check` and fix drivers.yml / variables.yml as it says." }],
];

const BY_STATE: Record<string, DriverAdvice> = {
  Active: { words: "Reading: every tag is up to date.", todo: "" },
  Loading: { words: "Starting.", todo: "" },
  Init: { words: "Starting: checking its configuration.", todo: "" },
  Connected: { words: "Connected, about to read.", todo: "" },
  Shutdown: { words: "Stopped (paused by an operator, or the gateway stops): its tags are Bad, out of service.", todo: "Resume it when the device is ready." },
  Backoff: { words: "Waiting before the next connection attempt after a failure.", todo: "Nothing, unless it keeps failing: then see the error." },
  Error: { words: "The last run failed.", todo: "See the error." },
  Fault: { words: "Failed again and again: retried only every minute, and an alarm is raised.", todo: "Fix the cause given by the error, then restart the driver." },
};

export function driverAdvice(state: string, lastError: string | null | undefined): DriverAdvice {
  const failing = state !== "Active" && state !== "Loading" && state !== "Init" && state !== "Connected" && state !== "Shutdown";
  if (failing && lastError) for (const [re, advice] of BY_ERROR) if (re.test(lastError)) return advice;
  return BY_STATE[state] ?? { words: `State ${state}.`, todo: "" };
}
