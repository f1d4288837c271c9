"""
Drivers: what publishes a UPS's data into the daemon.

A driver owns a L{nutshim.state.DeviceState}, says whether it is connected
and whether its data are fresh, and carries out SET and INSTCMD.  nutshim's
own drivers run inside the daemon; NUT's C drivers are reached through NUT's
driver socket with the same interface, so the daemon never knows which.
"""
