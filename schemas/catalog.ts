// The tag catalog: the tags of variables.yml by name, replaced as a whole on reload.
// Consumers (OPC UA server, Modbus slave, API) read it and listen for 'change'.
import { EventEmitter } from "node:events";
import type { Variable } from "./config.ts";

export class Catalog extends EventEmitter {
  private byTag = new Map<string, Variable>();

  constructor(tags: readonly Variable[] = []) {
    super();
    this.replace(tags);
  }

  replace(tags: readonly Variable[]): void {
    this.byTag = new Map(tags.map((t) => [t.tag, t]));
    this.emit("change", this.all());
  }

  get(tag: string): Variable | undefined {
    return this.byTag.get(tag);
  }

  has(tag: string): boolean {
    return this.byTag.has(tag);
  }

  all(): Variable[] {
    return [...this.byTag.values()];
  }

  get size(): number {
    return this.byTag.size;
  }
}
