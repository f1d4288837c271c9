"""
twistd plugins of nutshim; the services live in nutshim's tap modules.
"""

from twisted.application.service import ServiceMaker

nutUpsd = ServiceMaker(
    "nutshim upsd",
    "nutshim.upsd.tap",
    "NUT-compatible Attachment Daemon (upsd) with STARTTLS",
    "nut-upsd",
)

nutServerShim = ServiceMaker(
    "nutshim server shim",
    "nutshim.shim.tap_server",
    "STARTTLS/TLS 1.3 on port 401 in front of a legacy upsd (RFC 9271 Appendix D)",
    "nut-server-shim",
)

nutClientShim = ServiceMaker(
    "nutshim client shim",
    "nutshim.shim.tap_client",
    "Local NUT port for a legacy upsmon, relayed over STARTTLS to a server shim",
    "nut-client-shim",
)

nutUpsmon = ServiceMaker(
    "nutshim upsmon",
    "nutshim.upsmon.tap",
    "NUT-compatible Management Daemon (upsmon): notifications and shutdown",
    "nut-upsmon",
)
