// The usage lines of `edgectl discover`, apart from the command (command.ts) so that edgectl's help and
// its other commands do not load the OPC UA and Modbus clients.
export const DISCOVER_USAGE = `  discover opcua <opc.tcp://host:port/path> [options]
                          browse an OPC UA server and write endpoints.yml, drivers.yml and a
                          variables.yml fragment (node ids, types, units, access) to --out
                          options: --out DIR (default ./discovered/<driver>), --driver ID (opcua1),
                          --max-depth N (6), --max-nodes N (5000), --timeout-ms N (60000),
                          --start NODEID (i=85), --user NAME --password-env VAR (or --password PW),
                          --security-mode None|Sign|SignAndEncrypt, --security-policy None|Basic256Sha256,
                          --pki-dir DIR, --trust-server-certificate, --force (overwrite)
  discover modbus <tcp://host:port | serial:///dev/ttyX?baud=N | rtu+tcp://host:port> --units 1-10 [options]
                          probe which units answer and which registers read (one request at a time)
                          and write a draft map (uint16 tags unit<N>/<area>/<addr>) to --out
                          options: --areas holding,input (holding), --max-address N (999),
                          --block N (125), --rate N requests/s (20), --timeout-ms N (1000),
                          --max-requests N (5000), --out DIR, --driver ID (modbus1), --force`;
