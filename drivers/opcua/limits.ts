// The server's operation limits (ServerCapabilities/OperationLimits): how many monitored items one
// CreateMonitoredItems call, and how many nodes one Read or Browse, may carry. A request past a limit is refused
// whole (BadTooManyOperations: measured with node-opcua's server, 10,000 by default, and 17,783 items
// in one call put the driver in Fault with every tag Bad); PLC servers state far lower limits. So a
// driver with more tags than a limit splits its requests.
import { AttributeIds, resolveNodeId, VariableIds, type ClientSession } from "node-opcua";

export interface OperationLimits {
  monitoredItemsPerCall: number;
  nodesPerRead: number;
  nodesPerBrowse: number;
}

/** For a server that states no limit (0, or the nodes missing): what node-opcua's own splitting assumes. */
export const UNSTATED_LIMIT = 1000;

/** One stated limit (0 when not stated), read alone: a read of several could pass the server's limit itself. */
async function stated(session: ClientSession, id: VariableIds): Promise<number> {
  try {
    const dv = await session.read({ nodeId: resolveNodeId(id), attributeId: AttributeIds.Value });
    return dv.statusCode.isGood() && typeof dv.value?.value === "number" ? dv.value.value : 0;
  } catch {
    return 0; // a server without the OperationLimits nodes: unstated
  }
}

export async function readLimits(session: ClientSession): Promise<OperationLimits> {
  const limit = async (id: VariableIds) => (await stated(session, id)) || UNSTATED_LIMIT;
  return {
    monitoredItemsPerCall: await limit(VariableIds.Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall),
    nodesPerRead: await limit(VariableIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead),
    nodesPerBrowse: await limit(VariableIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerBrowse),
  };
}

/** `items` in consecutive slices of at most `size`, each with the index of its first item. */
export function slices<T>(items: readonly T[], size: number): { offset: number; items: T[] }[] {
  const out: { offset: number; items: T[] }[] = [];
  for (let offset = 0; offset < items.length; offset += size) out.push({ offset, items: items.slice(offset, offset + size) });
  return out;
}
