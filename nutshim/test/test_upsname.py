# -*- test-case-name: nutshim.test.test_upsname -*-
"""
Tests for RFC 9271 group names, C{[group:]ups[@host[:port]]}: the parser
(L{nutshim.protocol.upsname}), upsmon.conf's C{MONITOR} lines, the
C{nutshim-client} tools and nut-upsmon's notifications.
"""

from __future__ import annotations

import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from nutshim.client import UPSName, UPSNameError, parse_upsname
from nutshim.config import ConfigError, parse_upsmon_conf
from nutshim.config.upsmonconf import split_system
from nutshim.protocol.upsname import split_group
from nutshim.test.test_client import CLIRun
from nutshim.test.test_upsmon import Harness


class ParseTests(SynchronousTestCase):
    """
    L{parse_upsname} and L{split_group}.
    """

    def test_forms(self) -> None:
        """
        Every part is optional but the UPS; the group is split off, the
        host and port default as in NUT.
        """
        self.assertEqual(parse_upsname("ups"), UPSName("ups", "localhost", 3493, None))
        self.assertEqual(parse_upsname("ups-1@example.com:3493"),
                         UPSName("ups-1", "example.com", 3493))
        self.assertEqual(parse_upsname("HB:heartbeat1@example.com:3493"),
                         UPSName("heartbeat1", "example.com", 3493, "HB"))
        self.assertEqual(parse_upsname("HB:hb"), UPSName("hb", group="HB"))
        self.assertEqual(parse_upsname("g.1-x_y:u@[::1]:401"), UPSName("u", "::1", 401, "g.1-x_y"))
        self.assertEqual(parse_upsname("u@[::1]"), UPSName("u", "::1", 3493))
        self.assertEqual(str(parse_upsname("HB:hb@[::1]")), "HB:hb@[::1]:3493")
        self.assertEqual(str(parse_upsname("hb")), "hb@localhost:3493")

    def test_malformed(self) -> None:
        """
        A malformed name raises L{UPSNameError} saying what is wrong.
        """
        for bad, why in [
            (":ups@h", "nothing before the ':'"),
            ("1HB:ups@h", "invalid group '1HB'"),
            ("H B:ups", "invalid group 'H B'"),
            ("H/B:ups", "invalid group 'H/B'"),
            ("A" * 64 + ":ups", "invalid group"),
            ("HB:a:b@h", "more than one ':'"),
            ("HB:@h", "no UPS name after the group 'HB'"),
            ("@h", "no UPS name"),
            ("ups@", "no host name"),
            ("ups@:3493", "no host name"),
            ("ups@[::1", "missing closing bracket"),
            ("ups@[::1]x", "unexpected 'x'"),
            ("ups@h:", "must be a number"),
            ("ups@h:x", "must be a number"),
            ("ups@h:0", "between 1 and 65535"),
            ("ups@h:70000", "between 1 and 65535"),
        ]:
            error = self.assertRaises(UPSNameError, parse_upsname, bad)
            self.assertIn(why, str(error), bad)
        self.assertTrue(issubclass(UPSNameError, ValueError))

    def test_group_only_before_at(self) -> None:
        """
        Only a colon before the C{@} is a group's: ports and IPv6 literals
        keep theirs.
        """
        self.assertEqual(split_group("ups@h:3493"), (None, "ups@h:3493"))
        self.assertEqual(split_group("ups@[fe80::1]:1"), (None, "ups@[fe80::1]:1"))
        self.assertEqual(split_group("G:ups@[fe80::1]:1"), ("G", "ups@[fe80::1]:1"))
        self.assertEqual(split_system("G:ups@[fe80::1]:1"), ("ups", "fe80::1", 1))

    def test_pure(self) -> None:
        """
        The parser, and the configuration readers that use it, import no
        Twisted.
        """
        code = ("import sys, nutshim.protocol.upsname, nutshim.config; "
                "print(any(m == 'twisted' or m.startswith('twisted.') for m in sys.modules))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True)
        self.assertEqual(out.stdout.strip(), "False")


class MonitorLineTests(SynchronousTestCase):
    """
    C{MONITOR [group:]ups@host ...}.
    """

    def test_group(self) -> None:
        """
        The group is kept apart: C{upsname} (the wire) has none, C{system}
        (UPSNAME, C{%s}) is the name as written.
        """
        conf = parse_upsmon_conf(b"MONITOR HB:heartbeat@example.com:3493 0 u p primary\n"
                                 b"MONITOR ups@example.com 1 u p primary\n", "f")
        hb, ups = conf.monitors
        self.assertEqual((hb.system, hb.group, hb.upsname, hb.host, hb.port),
                         ("HB:heartbeat@example.com:3493", "HB", "heartbeat", "example.com",
                          3493))
        self.assertIsNone(ups.group)

    def test_malformed_group(self) -> None:
        """
        A malformed group is an error naming the line and the fault.
        """
        error = self.assertRaises(ConfigError, parse_upsmon_conf,
                                  b"MONITOR ok 1 u p primary\nMONITOR 9x:hb 0 u p primary\n",
                                  "upsmon.conf")
        self.assertEqual(error.lineno, 2)
        self.assertIn("MONITOR 9x:hb: cannot read the UPS name, host or port: invalid group "
                      "'9x'", error.message)

    def test_upsgroup_in_notifications(self) -> None:
        """
        nut-upsmon gives NOTIFYCMD the group as C{$UPSGROUP} and the name
        as written as C{$UPSNAME}; only the UPS goes on the wire.
        """
        h = Harness(self, "MONITOR LAB:ups@host 1 u p primary\n")
        client = h.connect(0, "OL")
        client.status = "OB"
        h.advance(5)
        self.assertIn("ATTACH ups", client.calls)
        self.assertIn("GET VAR ups ups.status", client.calls)
        [(argv, env, _)] = [run for run in h.runner.runs
                            if run[1] is not None and run[1].get("NOTIFYTYPE") == "ONBATT"]
        assert env is not None
        self.assertEqual((env["UPSNAME"], env["UPSGROUP"], argv[-1]),
                         ("LAB:ups@host", "LAB", "UPS LAB:ups@host on battery"))


class ToolTests(SynchronousTestCase):
    """
    C{nutshim-client upsc|upscmd|upsrw} with group names.
    """

    def test_upsc(self) -> None:
        """
        upsc connects to the host and asks for the UPS without the group.
        """
        run = CLIRun(self, ["upsc", "HB:dummy@nut.example:3494", "ups.status"])
        self.assertEqual((run.status, run.out.getvalue(), run.err.getvalue()),
                         (0, "OL CHRG\n", ""))
        self.assertEqual(run.connected_to, [("nut.example", 3494)])
        self.assertEqual(run.received, ["STARTTLS", "GET VAR dummy ups.status", "LOGOUT"])
        run = CLIRun(self, ["upsc", "-c", "HB:dummy"])
        self.assertEqual(run.out.getvalue(), "127.0.0.1\n::1\n")

    def test_upscmd_upsrw(self) -> None:
        """
        upscmd and upsrw send the UPS without the group.
        """
        run = CLIRun(self, ["upscmd", "-u", "admin", "-p", "secret", "G:dummy", "load.off"])
        self.assertEqual(run.status, 0, run.err.getvalue())
        self.assertIn("INSTCMD dummy load.off", run.received)
        run = CLIRun(self, ["upsrw", "G:dummy@localhost"])
        self.assertEqual(run.status, 0, run.err.getvalue())
        self.assertIn("LIST RW dummy", run.received)

    def test_malformed(self) -> None:
        """
        A malformed group stops the tool before connecting, saying why.
        """
        for name, argv in (("9:dummy", ["upsc", "9:dummy"]),
                           ("9:dummy", ["upscmd", "-u", "a", "-p", "b", "9:dummy", "x.y"]),
                           ("a:b:c@h", ["upsrw", "a:b:c@h"])):
            run = CLIRun(self, argv)
            self.assertEqual(run.status, 1, argv)
            self.assertEqual(run.connected_to, [], argv)
            self.assertTrue(run.err.getvalue().startswith(
                f"Error: invalid UPS definition {name!r}: "), run.err.getvalue())
        run = CLIRun(self, ["upsc", "9:dummy"])
        self.assertIn("invalid group '9'", run.err.getvalue())
        self.assertIn("Required format: [group:]upsname[@hostname[:port]]", run.err.getvalue())

    def test_usage_mentions_groups(self) -> None:
        """The help says how a group is written."""
        run = CLIRun(self, ["upsc", "-h"])
        self.assertIn("<group>:<upsname>[@<hostname>[:<port>]]", run.out.getvalue())
