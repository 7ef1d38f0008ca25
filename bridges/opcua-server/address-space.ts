// The tag tree: one folder per segment of the tag path, one variable per tag (its DataType, access
// level, description, engineering unit), kept in step with the catalog without restarting the server:
// an edit updates the node in place (monitored items keep running); only a new DataType re-creates it.
// Values are pushed in from the log (setValueFromSource); writes are handed to `onWrite`.
import {
  DataType,
  DataValue,
  makeAccessLevelFlag,
  Range,
  StatusCodes,
  Variant,
  type ISessionContext,
  type Namespace,
  type RolePermissionTypeOptions,
  type StatusCode,
  type UAObject,
  type UAVariable,
} from "node-opcua";
import type { DataFrame, DataType as TagType, Variable } from "../../schemas/index.ts";
import { engineeringUnits } from "./units.ts";
import { isNumericType, servedType, toStatusCode, toVariant, TYPE_MISMATCH, UA_TYPE, WAITING } from "./values.ts";

/** Executes a write; resolves with the StatusCode to answer the client. Never rejects. */
export type WriteHandler = (tag: Variable, value: Variant, context: ISessionContext | null) => Promise<StatusCode>;

export interface TagTreeOptions {
  rolePermissions: RolePermissionTypeOptions[];
  minimumSamplingInterval: number;
  onWrite: WriteHandler;
}

interface TagNode {
  tag: Variable;
  node: UAVariable;
  /** the type it is served as (servedType): a change of it re-creates the node */
  type: TagType;
  /** the folder path it hangs in ("" for the root) */
  folder: string;
}

/** What a catalog change did to the tree. */
export interface TreeChanges {
  added: string[];
  removed: string[];
  /** description, access, unit or limits changed in place */
  updated: string[];
  /** served DataType changed: deleted and created again under the same NodeId */
  rebuilt: string[];
}

const ACCESS: Record<Variable["access"], number> = {
  R: makeAccessLevelFlag("CurrentRead"),
  W: makeAccessLevelFlag("CurrentWrite"),
  RW: makeAccessLevelFlag("CurrentRead | CurrentWrite"),
};
const READ_ONLY = makeAccessLevelFlag("CurrentRead");

/** The attributes and properties an edit can change in place. */
/** Whether a node's attributes from its tag stay as they are: field by field, not two JSON strings per tag at each reload. */
const sameShape = (a: Variable, b: Variable) => a.access === b.access && a.unit === b.unit && a.description === b.description && a.min === b.min && a.max === b.max;

/** An AnalogItem's EURange: the tag's write limits, open-ended when absent. */
const euRange = (t: Variable) => new Range({ low: t.min ?? -1e308, high: t.max ?? 1e308 });
const extension = (value: unknown) => new Variant({ dataType: DataType.ExtensionObject, value });

/**
 * node-opcua calls the set function with the DataValue only; the session (who writes) is known in
 * writeValue, which calls the set function synchronously after its access checks. So writeValue is
 * wrapped to hold the context for exactly that synchronous span. These are node-opcua internals
 * (`writeValue`, `_timestamped_set_func`, `$dataValue`), checked by the write tests.
 */
interface WritableInternals {
  writeValue(context: ISessionContext | null, dataValue: DataValue, ...rest: unknown[]): unknown;
  _timestamped_set_func: (dataValue: DataValue, callback: (err: Error | null, status?: StatusCode) => void) => void;
  $dataValue: DataValue;
}

export class TagTree {
  private readonly nodes = new Map<string, TagNode>();
  private readonly folders = new Map<string, { node: UAObject; tags: number; children: number }>();

  constructor(
    private readonly ns: Namespace,
    private readonly root: UAObject,
    private readonly opts: TagTreeOptions,
  ) {}

  get size(): number {
    return this.nodes.size;
  }

  has(tag: string): boolean {
    return this.nodes.has(tag);
  }

  /** Brings the tree to `tags`: adds new tags, removes missing ones, updates edited ones in place. */
  sync(tags: readonly Variable[]): TreeChanges {
    const wanted = new Map(tags.map((t) => [t.tag, t]));
    const changes: TreeChanges = { added: [], removed: [], updated: [], rebuilt: [] };
    for (const [name, n] of this.nodes) {
      const t = wanted.get(name);
      if (!t) {
        this.remove(name);
        changes.removed.push(name);
      } else if (servedType(t) !== n.type) {
        // clients cache a node's DataType: a new one is a new node (its monitored items end, see README)
        this.remove(name);
        changes.rebuilt.push(name);
      } else {
        if (!sameShape(t, n.tag)) {
          this.update(n, t);
          changes.updated.push(name);
        }
        n.tag = t; // tenant, limits used by writes come from the newest catalog
      }
    }
    for (const t of tags) {
      if (this.nodes.has(t.tag)) continue;
      this.add(t);
      changes.added.push(t.tag);
    }
    const rebuilt = new Set(changes.rebuilt);
    changes.added = changes.added.filter((name) => !rebuilt.has(name));
    return changes;
  }

  /** Description, access level, EngineeringUnits and EURange of an existing node, without re-creating it. */
  private update(n: TagNode, t: Variable): void {
    const node = n.node;
    node.setDescription(t.description ?? t.tag);
    node.accessLevel = ACCESS[t.access];
    node.userAccessLevel = ACCESS[t.access];
    // a property write sets SemanticsChanged on the next notification: only when units or range changed
    const old = n.tag;
    if (!isNumericType(n.type) || (t.unit === old.unit && t.min === old.min && t.max === old.max)) return;
    const eu = node.getPropertyByName("EngineeringUnits") as UAVariable | null;
    if (t.unit) {
      this.setProperty(node, "EngineeringUnits", "EUInformation", extension(engineeringUnits(t.unit)), eu);
      this.setProperty(node, "EURange", "Range", extension(euRange(t)), node.getPropertyByName("EURange") as UAVariable | null);
    } else if (eu) {
      // EngineeringUnits is optional in AnalogItemType (EURange is mandatory and stays)
      this.ns.addressSpace.deleteNode(eu);
    }
  }

  /** Sets a property's value, adding it (read-only) when the node does not have it yet. */
  private setProperty(node: UAVariable, name: string, dataType: string, value: Variant, existing: UAVariable | null): void {
    if (existing) {
      existing.setValueFromSource(value, StatusCodes.Good);
      return;
    }
    this.ns.addVariable({
      propertyOf: node,
      browseName: { name, namespaceIndex: 0 },
      typeDefinition: "PropertyType",
      dataType,
      value,
      accessLevel: READ_ONLY,
      userAccessLevel: READ_ONLY,
      minimumSamplingInterval: 0,
    });
  }

  /** Publishes a committed reading to the variable (and so to every monitored item on it). */
  setValue(f: DataFrame): void {
    const n = this.nodes.get(f.tag);
    if (!n) return;
    const variant = toVariant(n.type, f.value);
    const date = new Date(f.ts / 1000);
    if (variant) n.node.setValueFromSource(variant, toStatusCode(f.quality), date);
    else n.node.setValueFromSource(toVariant(n.type, null)!, TYPE_MISMATCH, date);
  }

  private folderFor(path: string): UAObject {
    if (path === "") return this.root;
    const known = this.folders.get(path);
    if (known) return known.node;
    const cut = path.lastIndexOf("/");
    const parentPath = cut < 0 ? "" : path.slice(0, cut);
    const parent = this.folderFor(parentPath);
    const name = path.slice(cut + 1);
    // "folder:" keeps a folder's NodeId apart from a tag that has the same path
    const node = this.ns.addFolder(parent, { browseName: name, nodeId: `s=folder:${path}` });
    this.folders.set(path, { node, tags: 0, children: 0 });
    if (parentPath) this.folders.get(parentPath)!.children++; // created just above
    return node;
  }

  private releaseFolder(path: string): void {
    while (path !== "") {
      const f = this.folders.get(path);
      if (!f || f.tags > 0 || f.children > 0) return;
      this.ns.addressSpace.deleteNode(f.node);
      this.folders.delete(path);
      const cut = path.lastIndexOf("/");
      path = cut < 0 ? "" : path.slice(0, cut);
      const parent = this.folders.get(path);
      if (parent) parent.children--;
    }
  }

  private add(tag: Variable): void {
    const cut = tag.tag.lastIndexOf("/");
    const folder = cut < 0 ? "" : tag.tag.slice(0, cut);
    const leaf = tag.tag.slice(cut + 1);
    const parent = this.folderFor(folder);
    const accessLevel = ACCESS[tag.access];
    const type = servedType(tag);
    const common = {
      nodeId: `s=${tag.tag}`,
      browseName: leaf,
      displayName: leaf,
      description: tag.description ?? tag.tag,
      organizedBy: parent,
      dataType: UA_TYPE[type] as number, // builtin DataType enum values are their ns=0 NodeIds
      accessLevel,
      userAccessLevel: accessLevel,
      minimumSamplingInterval: this.opts.minimumSamplingInterval,
      rolePermissions: this.opts.rolePermissions,
    };
    // A numeric tag with a unit is an AnalogItem: its EngineeringUnits (and EURange from min/max)
    // are what SCADA clients display; other tags are plain BaseDataVariables.
    const node =
      tag.unit && isNumericType(type)
        ? this.ns.addAnalogDataItem({ ...common, engineeringUnits: engineeringUnits(tag.unit), engineeringUnitsRange: euRange(tag) })
        : this.ns.addVariable(common);
    // node-opcua creates properties writable by anyone (no role permissions): they describe the tag
    // and only the catalog changes them
    for (const p of node.getProperties()) {
      const prop = p as UAVariable;
      prop.accessLevel = READ_ONLY;
      prop.userAccessLevel = READ_ONLY;
    }
    node.setValueFromSource(toVariant(type, null)!, WAITING);
    this.bindWrites(node, tag.tag);
    this.nodes.set(tag.tag, { tag, node, type, folder });
    if (folder) this.folders.get(folder)!.tags++; // folderFor created it
  }

  private remove(name: string): void {
    const n = this.nodes.get(name);
    if (!n) return;
    this.nodes.delete(name);
    this.ns.addressSpace.deleteNode(n.node);
    if (n.folder) {
      const f = this.folders.get(n.folder);
      if (f) f.tags--;
      this.releaseFolder(n.folder);
    }
  }

  private bindWrites(node: UAVariable, name: string): void {
    const v = node as unknown as WritableInternals;
    const writeValue = v.writeValue.bind(v);
    let context: ISessionContext | null = null;
    v.writeValue = (ctx, dataValue, ...rest) => {
      context = ctx;
      try {
        return writeValue(ctx, dataValue, ...rest);
      } finally {
        context = null;
      }
    };
    v._timestamped_set_func = (dataValue, callback) => {
      const ctx = context;
      const n = this.nodes.get(name);
      if (!n) return callback(null, StatusCodes.BadNodeIdUnknown);
      this.opts.onWrite(n.tag, dataValue.value, ctx).then(
        (status) => {
          // node-opcua stores the written DataValue in the node after this callback, whatever the
          // status; the node must only show what the log says, so the written one is made a copy
          // of the current value (no change is notified).
          const cur = v.$dataValue;
          dataValue.value = cur.value;
          dataValue.statusCode = cur.statusCode;
          dataValue.sourceTimestamp = cur.sourceTimestamp;
          dataValue.sourcePicoseconds = cur.sourcePicoseconds;
          dataValue.serverTimestamp = cur.serverTimestamp;
          dataValue.serverPicoseconds = cur.serverPicoseconds;
          callback(null, status);
        },
        () => callback(null, StatusCodes.BadInternalError),
      );
    };
  }
}
