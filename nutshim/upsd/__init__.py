"""
The Attachment Daemon: a drop-in replacement for NUT's C upsd.

L{nutshim.upsd.engine} holds the command semantics (no I/O),
L{nutshim.upsd.protocol} the per-connection glue, L{nutshim.upsd.service}
the configuration, drivers and listeners, L{nutshim.upsd.tap} the twistd
plugin options.
"""
