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
