// OPC UA DataType of each tag type, by name (node-opcua's DataType enum key), shared by the OPC UA
// server bridge and the OPC UA client driver without making schemas depend on node-opcua.
import type { DataType } from "./config.ts";

export const UA_DATATYPE_NAME = {
  bool: "Boolean",
  int16: "Int16",
  uint16: "UInt16",
  int32: "Int32",
  uint32: "UInt32",
  int64: "Int64",
  uint64: "UInt64",
  float32: "Float",
  float64: "Double",
  string: "String",
} as const satisfies Record<DataType, string>;
