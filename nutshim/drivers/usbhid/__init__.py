"""
C{nutshim-usbhid}: USB HID Power Device UPSes (what NUT's C{usbhid-ups} drives).

The package is layered so that each layer can be trusted on its own:

 - L{descriptor}, L{values}, L{usages}: the HID report descriptor, report
   bytes and usage names -- pure functions on bytes, no I/O, no Twisted;
 - L{mapping}, L{subdrivers}, L{quirks}: HID paths to NUT variables,
   C{ups.status} flags and commands, per vendor, as NUT's subdrivers map
   them, plus the named fix-ups real devices need;
 - L{capture}, L{replay}: NUT's own C{usbhid-ups -DDDDD} logs (and plain
   descriptor + report dumps) parsed into captures, and a pyusb backend
   that plays one, so the real I/O code runs against a real device's bytes;
 - L{device}: the blocking pyusb calls; L{driver}: the Twisted driver that
   runs them on a dedicated thread and publishes into the daemon.
"""
