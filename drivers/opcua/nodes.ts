// The check of the tags' nodes at connect: each node must exist on the server and its DataType must
// be one the tag's type can hold without guessing (a Double is not a bool, a String is not an int32).
// A tag that fails is refused with a quality and a reason naming its node; it is not read. Integer
// types of another width are accepted: their values are range-checked one by one (values.ts).
import { AttributeIds, DataType, NodeId, StatusCodes, findBasicDataType, type ClientSession, type DataValue } from "node-opcua";
import type { DataType as TagType } from "../../schemas/index.ts";
import { Quality } from "../../schemas/quality.ts";

const INTEGER = new Set([DataType.SByte, DataType.Byte, DataType.Int16, DataType.UInt16, DataType.Int32, DataType.UInt32, DataType.Int64, DataType.UInt64]);
const NUMERIC = new Set([...INTEGER, DataType.Float, DataType.Double]);

/** Whether a tag of type `tagType` can hold values of the server's built-in `dataType`. */
export function tagTypeAccepts(tagType: TagType, dataType: DataType): boolean {
  switch (tagType) {
    case "bool":
      return dataType === DataType.Boolean;
    case "string":
      return dataType === DataType.String;
    case "float32":
    case "float64":
      return NUMERIC.has(dataType);
    default:
      return INTEGER.has(dataType);
  }
}

export interface NodeToCheck {
  nodeId: string;
  tagType: TagType;
}

/** A tag left out of reads: its Bad quality and why (for the event and the log line). */
export interface Refusal {
  index: number;
  quality: number;
  reason: string;
}

/** The built-in DataType behind a DataType node: ns=0 ids up to 25 are built-in, others are subtypes to resolve. */
async function builtIn(session: ClientSession, dataTypeId: NodeId, cache: Map<string, Promise<DataType | undefined>>): Promise<DataType | undefined> {
  if (dataTypeId.namespace === 0 && typeof dataTypeId.value === "number" && dataTypeId.value >= 1 && dataTypeId.value <= 25) return dataTypeId.value as DataType;
  const key = dataTypeId.toString();
  let found = cache.get(key);
  if (!found) {
    // an unknown type (e.g. a structure) is not checked here; its values still are (values.ts)
    found = findBasicDataType(session, dataTypeId).catch(() => undefined);
    cache.set(key, found);
  }
  return await found;
}

async function checkOne(session: ClientSession, node: NodeToCheck, dv: DataValue, cache: Map<string, Promise<DataType | undefined>>): Promise<Omit<Refusal, "index"> | null> {
  const sc = dv.statusCode;
  if (sc.equals(StatusCodes.BadNodeIdUnknown) || sc.equals(StatusCodes.BadNodeIdInvalid)) {
    return { quality: Quality.Bad_NodeIdUnknown, reason: `node ${node.nodeId} does not exist on the server (${sc.name})` };
  }
  if (sc.equals(StatusCodes.BadAttributeIdInvalid)) {
    return { quality: Quality.Bad_ConfigurationError, reason: `node ${node.nodeId} is not a variable (it has no value)` };
  }
  if (!sc.isGood() || !(dv.value?.value instanceof NodeId)) return null; // not checkable here: its values still are
  const dataType = await builtIn(session, dv.value.value, cache);
  if (dataType === undefined || tagTypeAccepts(node.tagType, dataType)) return null;
  return { quality: Quality.Bad_TypeMismatch, reason: `node ${node.nodeId} is of DataType ${DataType[dataType]}, which a ${node.tagType} tag cannot hold` };
}

/** Reads every node's DataType, at most `nodesPerRead` a read (the server's limit), and returns the tags to refuse (none when all fit). */
export async function checkNodes(session: ClientSession, nodes: readonly NodeToCheck[], nodesPerRead: number): Promise<Refusal[]> {
  const refused: Refusal[] = [];
  const cache = new Map<string, Promise<DataType | undefined>>();
  for (let start = 0; start < nodes.length; start += nodesPerRead) {
    const chunk = nodes.slice(start, start + nodesPerRead);
    const dvs = await session.read(chunk.map((n) => ({ nodeId: n.nodeId, attributeId: AttributeIds.DataType })));
    for (let i = 0; i < chunk.length; i++) {
      const r = await checkOne(session, chunk[i]!, dvs[i]!, cache); // one DataValue per node read
      if (r) refused.push({ index: start + i, ...r });
    }
  }
  return refused;
}
