// The files a discovery writes: endpoints.yml (one endpoint), drivers.yml (one driver entry) and a
// variables.yml fragment (one flow-style line per tag, with comments), as text, so that the CLI writes
// them to a folder and the API returns them as JSON. Loaded as they are, they validate and poll.
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import YAML from "yaml";
import type { DriverEntry, Variable } from "../../schemas/index.ts";

export const DISCOVERED_FILES = ["endpoints.yml", "drivers.yml", "variables.yml"] as const;
export type DiscoveredFiles = Record<(typeof DISCOVERED_FILES)[number], string>;

/** A tag of the fragment, or a comment line before the next tag (a range heading, a skipped node). */
export type DraftTag = Partial<Omit<Variable, "address">> & Pick<Variable, "tag" | "driver" | "type"> & { address: Record<string, unknown> };
export type FragmentLine = { tag: DraftTag } | { comment: string };

/** Thrown for bad discovery options (what and where), and for a device that could not be browsed. */
export class DiscoverError extends Error {
  override name = "DiscoverError";
}

/** The options asked for cannot be: nothing was sent to the device. */
export class DiscoverOptionError extends DiscoverError {
  override name = "DiscoverOptionError";
  /** the request property at fault (the API's `field`), when one is */
  constructor(
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

const flow = (v: unknown) => YAML.stringify(v, { collectionStyle: "flow", lineWidth: 0 }).trim();
const comment = (text: string) => `# ${text.replace(/\n/g, " ")}`;

export interface FilesInput {
  header: string;
  endpointId: string;
  endpoint: { url: string; timeoutMs: number };
  driver: DriverEntry;
  lines: readonly FragmentLine[];
}

/** The three files' text. */
export function renderFiles(input: FilesInput): DiscoveredFiles {
  const head = comment(input.header);
  return {
    "endpoints.yml": `${head}\nendpoints:\n  ${input.endpointId}: ${flow(input.endpoint)}\n`,
    "drivers.yml": `${head}\n${YAML.stringify({ drivers: [input.driver] }, { lineWidth: 0 })}`,
    "variables.yml": [
      head,
      "tags:",
      ...input.lines.map((l) => ("comment" in l ? `  ${comment(l.comment)}` : `  - ${flow(l.tag)}`)),
    ].join("\n") + "\n",
  };
}

/** Writes the files into `dir` (created); refuses to overwrite unless `force`. Returns their paths. */
export function writeFiles(dir: string, files: DiscoveredFiles, force = false): string[] {
  mkdirSync(dir, { recursive: true });
  const paths = DISCOVERED_FILES.map((name) => join(dir, name));
  if (!force) {
    const existing = paths.filter((p) => existsSync(p));
    if (existing.length) throw new DiscoverError(`${existing.join(", ")} exist${existing.length === 1 ? "s" : ""}: choose another --out folder or give --force`);
  }
  for (const [i, name] of DISCOVERED_FILES.entries()) writeFileSync(paths[i]!, files[name]);
  return paths;
}

/** A tag name segment from a browse name or label: characters a tag name allows, others as '_'. */
export function tagSegment(name: string): string {
  const s = name.replace(/[^A-Za-z0-9_.:-]/g, "_").replace(/^[.]+/, "_");
  return s || "_";
}
