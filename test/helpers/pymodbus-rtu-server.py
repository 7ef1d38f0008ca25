# A Modbus RTU slave for tests: Debian's pymodbus serving units on a serial device (a pty).
# usage: pymodbus-rtu-server.py <device> <unit>[,<unit>...]
# Unit u's holding and input register i hold u*100+i; its coils and discrete inputs alternate.
import asyncio
import sys

from pymodbus.datastore import ModbusSequentialDataBlock, ModbusServerContext, ModbusSlaveContext
from pymodbus.server import StartAsyncSerialServer
from pymodbus.transaction import ModbusRtuFramer


def slave(unit):
    words = [unit * 100 + i for i in range(100)]
    bits = [i % 2 == 0 for i in range(100)]
    # blocks start at 1: pymodbus adds 1 to every address unless zero_mode is set
    return ModbusSlaveContext(
        hr=ModbusSequentialDataBlock(1, list(words)),
        ir=ModbusSequentialDataBlock(1, list(words)),
        co=ModbusSequentialDataBlock(1, list(bits)),
        di=ModbusSequentialDataBlock(1, list(bits)),
    )


units = [int(u) for u in sys.argv[2].split(",")]
context = ModbusServerContext(slaves={u: slave(u) for u in units}, single=False)
print("serving", sys.argv[1], units, flush=True)
asyncio.run(StartAsyncSerialServer(context=context, framer=ModbusRtuFramer, port=sys.argv[1], baudrate=19200, timeout=0.005))
