# -*- test-case-name: nutshim.test.test_client -*-
"""
The tools' help texts: NUT 2.8.0's wording (people know these), followed by
the TLS options that only nutshim-client has.
"""

from __future__ import annotations

from typing import TextIO

from nutshim import __version__

__all__ = ["TOOLS", "usage"]

TOOLS = ("upsc", "upscmd", "upsrw")

_TEXT = {
    "upsc": """\
usage: upsc -l | -L [<hostname>[:port]]
       upsc <ups> [<variable>]
       upsc -c <ups>

Demo program to display UPS variables.

First form (lists UPSes):
  -l         - lists each UPS on <hostname>, one per line.
  -L         - lists each UPS followed by its description (from ups.conf).
               Default hostname: localhost

Second form (lists variables and values):
  <ups>      - upsd server, <upsname>[@<hostname>[:<port>]] form
  <variable> - optional, display this variable only.
               Default: list all variables for <host>

Third form (lists clients connected to a device):
  -c         - lists each client connected on <ups>, one per line.
  <ups>      - upsd server, <upsname>[@<hostname>[:<port>]] form
""",
    "upscmd": """\
usage: upscmd [-h]
       upscmd [-l <ups>]
       upscmd [-u <username>] [-p <password>] [-w] [-t <timeout>] <ups> <command> [<value>]

Administration program to initiate instant commands on UPS hardware.

  -h\t\tdisplay this help text
  -l <ups>\tshow available commands on UPS <ups>
  -u <username>\tset username for command authentication
  -p <password>\tset password for command authentication
  -w            wait for the completion of command by the driver
                and return its actual result from the device
  -t <timeout>\tset a timeout when using -w (in seconds, default: 10)

  <ups>\t\tUPS identifier - <upsname>[@<hostname>[:<port>]]
  <command>\tValid instant command - test.panel.start, etc.
  [<value>]\tAdditional data for command - number of seconds, etc.
""",
    "upsrw": """\
usage: upsrw [-h]
       upsrw [-s <variable>] [-u <username>] [-p <password>] [-w] [-t <timeout>] <ups>

Demo program to set variables within UPS hardware.

  -h            display this help text
  -s <variable>\tspecify variable to be changed
\t\tuse -s VAR=VALUE to avoid prompting for value
  -l            show all possible read/write variables.
  -u <username> set username for command authentication
  -p <password> set password for command authentication
  -w            wait for the completion of setting by the driver
                and return its actual result from the device
  -t <timeout>\tset a timeout when using -w (in seconds, default: 10)

  <ups>         UPS identifier - <upsname>[@<hostname>[:<port>]]

Call without -s to show all possible read/write variables (same as -l).
""",
}

_TLS = """
TLS (nutshim-client only; options go before the other arguments):
  --cafile <file>     verify the server against these PEM CA certificates
  --pin sha256:<hex>  accept only the server certificate with this fingerprint
  --certfile <file>   present this PEM client certificate chain and key
  --insecure          encrypt without verifying the server (not recommended)
  --tls               require TLS; never send anything in plaintext
  --no-tls            do not try STARTTLS
  --min-tls 1.2|1.3   lowest TLS version accepted (default: 1.3)
  --server-name <n>   the name to verify, if not the host connected to
  --timeout <s>       network timeout in seconds (default: 10)
By default STARTTLS is tried and plaintext is used only if the server has no
TLS; a server offering TLS must be verifiable (--cafile or --pin).

A <ups> may carry an RFC 9271 group, <group>:<upsname>[@<hostname>[:<port>]]
(e.g. HB:heartbeat@localhost): the group is a label, only <upsname> is sent.
"""


def usage(tool: str, out: TextIO, status: int) -> int:
    """
    Print C{tool}'s help on C{out}; returns C{status} for the caller.
    """
    out.write(f"Network UPS Tools {tool} (nutshim-client {__version__})\n\n")
    out.write(_TEXT[tool])
    out.write(_TLS)
    return status
