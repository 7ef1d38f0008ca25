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
  // TLS of tls+tcp:// and mqtts:// endpoints (storage/tls.ts words its failures): before the OPC UA certificate line
  [/TLS handshake .*unknown CA/i, { words: "The device's TLS certificate is not signed by the CA the gateway trusts for this endpoint.", todo: "Put the CA that signed the device's certificate in the file of the endpoint's tls.ca (read again at the next attempt)." }],
  [/TLS handshake .*(has expired|not valid yet)/i, { words: "The device's TLS certificate has expired (or is not valid yet).", todo: "Renew the device's certificate; check the gateway's and the device's clocks." }],
  [/TLS handshake .*hostname mismatch/i, { words: "The device's TLS certificate is made out to another name than the endpoint's address.", todo: "Set tls.servername of the endpoint to the name in the certificate, or use the address the certificate names." }],
  [/refused our client certificate|client certificate .*(expired|not valid before|not a PEM)|client key .*(does not belong|not a PEM)|cannot read the (CA file|client)|CA file .*holds no/i, { words: "The gateway's own TLS files are unusable or refused: its client certificate, key or CA file.", todo: "Check the files of the endpoint's tls block (the error names the one at fault): a certificate signed by a CA the device trusts, within its validity, with its own key." }],
  [/certificate|BadCertificate|Bad_Certificate|untrusted/i, { words: "The OPC UA server does not trust the gateway's certificate (or the gateway not the server's).", todo: "Trust the gateway's certificate on the server (its 'rejected' folder) and the server's in the gateway's PKI folder." }],
  [/BadUserAccessDenied|Bad_UserAccessDenied|BadIdentityToken|password/i, { words: "The OPC UA server refused the user name or password.", todo: "Check the user and password of the endpoint." }],
  [/unknown driver type|config|invalid/i, { words: "The driver's configuration is not valid.", todo: "Run `npm run edgectl -- check` and fix drivers.yml / variables.yml as it says." }],
];

/**
 * Modbus RTU lines (serial://, rtu+tcp://): checked first there. A silent unit on RS-485 is a unit id,
 * line settings or wiring matter, not an IP route, and a garbled answer is the line's, not the network's.
 */
const ON_SERIAL_LINE: Array<[RegExp, DriverAdvice]> = [
  [/no such device/i, { words: "The serial adapter is not there: unplugged, or the device path is wrong.", todo: "Plug the USB adapter back in (the line reopens by itself), or fix the device path in the endpoint's URL (/dev/serial/by-id/ names stay the same across replugs)." }],
  [/takes no more bytes|output buffer full/i, { words: "The serial adapter takes no more bytes: it hangs.", todo: "Unplug and replug the adapter; look at the kernel log (dmesg) for its driver." }],
  [/timed? ?out|Bad_Timeout|did not answer|not answering/i, { words: "The unit did not answer on the serial line.", todo: "Check the unit id (unitId in drivers.yml), the baud rate, parity and stop bits in the endpoint's URL against the device, the RS-485 wiring (A/B, termination) and the device's power." }],
  [/CRC|garbled|answer from unit|Bad_CommunicationError/i, { words: "The unit's answers arrive garbled on the serial line.", todo: "Check the baud rate and parity in the endpoint's URL against the device, the RS-485 termination and biasing, and that no other master drives the line." }],
];

const BY_STATE: Record<string, DriverAdvice> = {
  Active: { words: "Reading: every tag is up to date.", todo: "" },
  Loading: { words: "Starting.", todo: "" },
  Init: { words: "Starting: checking its configuration.", todo: "" },
  Connected: { words: "Connected, about to read.", todo: "" },
  Shutdown: { words: "Stopped (paused by an operator, or the gateway stops): its tags are Bad, out of service.", todo: "Resume it when the device is ready." },
  Backoff: { words: "Waiting before the next connection attempt after a failure.", todo: "Nothing, unless it keeps failing: then see the error." },
  Error: { words: "The last run failed.", todo: "See the error." },
  Fault: { words: "Failed again and again: retried every minute (at once when a network device accepts connections again), and an alarm is raised.", todo: "Fix the cause given by the error, then restart the driver." },
};

/** How a driver's tags read now: how many, how many Bad, and the Bad quality most of them have. */
export interface TagHealth {
  total: number;
  bad: number;
  /** the most frequent Bad quality's name (Bad_Timeout ...), null when none is Bad */
  quality: string | null;
}

/** `serialLine`: the driver's endpoint is a Modbus RTU line (serial:// or rtu+tcp://). */
export function driverAdvice(state: string, lastError: string | null | undefined, tags?: TagHealth, serialLine = false): DriverAdvice {
  const known = serialLine ? [...ON_SERIAL_LINE, ...BY_ERROR] : BY_ERROR;
  const failing = state !== "Active" && state !== "Loading" && state !== "Init" && state !== "Connected" && state !== "Shutdown";
  if (failing && lastError) for (const [re, advice] of known) if (re.test(lastError)) return advice;
  // Active only says the driver runs: a hung device leaves it Active while every read times out
  if (state === "Active" && tags && tags.bad > 0) return badTagsAdvice(tags, known);
  return BY_STATE[state] ?? { words: `State ${state}.`, todo: "" };
}

function badTagsAdvice(tags: TagHealth, known: Array<[RegExp, DriverAdvice]>): DriverAdvice {
  const which = tags.bad === tags.total ? `all ${tags.total} tags are` : `${tags.bad} of ${tags.total} tags are`;
  const cause = tags.quality ? known.find(([re]) => re.test(tags.quality!))?.[1] : undefined;
  return {
    words: `Running, but ${which} Bad (${tags.quality ?? "Bad"})${cause ? `: ${cause.words}` : "."}`,
    todo: cause?.todo ?? "Open the tags to see each one's quality; check the device and the tags' addresses.",
  };
}
