// Shared by the discover tests: the plant OPC UA server with a known address space, and a command run
// with its console output swallowed (it prints what it wrote).
import { DataType, OPCUAServer, standardUnits, Variant, VariantArrayType, type UAObject } from "node-opcua";

/**
 * An OPC UA server on 127.0.0.1:<port>/UA/plant: folder Plant, object Boiler with Pressure (Double
 * 3.25), Count (Int32 42), Running (Boolean true), Name (String "Boiler 1"), Setpoint (Double 70,
 * writable), History (Double array), Started (DateTime), Temperature (AnalogItem, 81.5 °C), and two
 * Doubles whose browse names "Flow rate" (1.5) and "Flow/rate" (2.5) make the same tag name segment.
 * Its operation limits are 3 nodes per Read and Browse and 3 monitored items per call, as a PLC's small
 * server states them: a client asking more in one request is refused whole (BadTooManyOperations).
 */
export async function startPlant(port: number): Promise<OPCUAServer> {
  const s = new OPCUAServer({
    port,
    hostname: "127.0.0.1",
    resourcePath: "/UA/plant",
    allowAnonymous: true,
    isAuditing: false,
    serverCapabilities: { operationLimits: { maxNodesPerRead: 3, maxNodesPerBrowse: 3, maxMonitoredItemsPerCall: 3 } },
  });
  await s.initialize();
  const as = s.engine.addressSpace!;
  const ns = as.getOwnNamespace();
  const plant = ns.addFolder(as.rootFolder.objects, { browseName: "Plant", nodeId: "s=Plant" });
  const boiler: UAObject = ns.addObject({ organizedBy: plant, browseName: "Boiler", nodeId: "s=Plant.Boiler" });
  const add = (name: string, dataType: DataType, value: unknown, opts: { writable?: boolean; array?: boolean } = {}) => {
    const v = ns.addVariable({
      componentOf: boiler,
      browseName: name,
      nodeId: `s=Plant.Boiler.${name}`,
      dataType,
      valueRank: opts.array ? 1 : -1,
      accessLevel: opts.writable ? "CurrentRead | CurrentWrite" : "CurrentRead",
      userAccessLevel: opts.writable ? "CurrentRead | CurrentWrite" : "CurrentRead",
      minimumSamplingInterval: 0,
    });
    v.setValueFromSource(new Variant({ dataType, value, arrayType: opts.array ? VariantArrayType.Array : VariantArrayType.Scalar }));
    return v;
  };
  add("Pressure", DataType.Double, 3.25);
  add("Count", DataType.Int32, 42);
  add("Running", DataType.Boolean, true);
  add("Name", DataType.String, "Boiler 1");
  add("Setpoint", DataType.Double, 70, { writable: true });
  add("History", DataType.Double, [1, 2, 3], { array: true });
  add("Started", DataType.DateTime, new Date());
  ns.addAnalogDataItem({
    componentOf: boiler,
    browseName: "Temperature",
    nodeId: "s=Plant.Boiler.Temperature",
    dataType: "Double",
    engineeringUnitsRange: { low: 0, high: 200 },
    engineeringUnits: standardUnits.degree_celsius,
    value: new Variant({ dataType: DataType.Double, value: 81.5 }),
    minimumSamplingInterval: 0,
  });
  add("Flow rate", DataType.Double, 1.5);
  add("Flow/rate", DataType.Double, 2.5);
  await s.start();
  return s;
}

export async function silenced<T>(f: () => Promise<T>): Promise<T> {
  const { log, error } = console;
  console.log = console.error = () => undefined;
  try {
    return await f();
  } finally {
    Object.assign(console, { log, error });
  }
}
