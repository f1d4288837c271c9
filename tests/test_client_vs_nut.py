# -*- test-case-name: tests.test_client_vs_nut -*-
"""
C{nutshim-client upsc|upscmd|upsrw} against NUT 2.8.0's own tools, byte for
byte, both talking to a private real NUT C{upsd} and C{dummy-ups}.

Scripts parse what these tools print, so "equivalent" means the same
stdout, the same exit status and the same error messages.  The only stderr
difference allowed is the line Debian's NSS build of libupsclient prints
on every TLS attempt (C{Init SSL without certificate database}).

Skipped when NUT is not installed, except on CI (C{CI=true}), where a
missing NUT is a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
from typing import Dict, List, Optional, Tuple

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

import nutshim
from tests.harness import free_port, real_driver, real_upsd, require, wait_for, write

UPSC = "/usr/bin/upsc"
UPSCMD = "/usr/bin/upscmd"
UPSRW = "/usr/bin/upsrw"
TOOLS = {"upsc": UPSC, "upscmd": UPSCMD, "upsrw": UPSRW}

#: The directory holding the C{nutshim} package, for the child's PYTHONPATH.
SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(nutshim.__file__)))

UPS_CONF = """\
[dummy]
driver = dummy-ups
port = dummy.dev
desc = "Crash \\"Dummy\\" \\#1"
[other]
driver = dummy-ups
port = other.dev
"""

DUMMY_DEV = """\
battery.charge: 90
battery.runtime: 1800
input.voltage: 230.0
outlet.1.desc: "PowerShare Outlet 1"
ups.id: "my \\"quoted\\" id"
ups.status: OL CHRG
"""

UPSD_USERS = """\
[admin]
  password = mypass
  actions = SET
  instcmds = ALL
  upsmon secondary
[spacey]
  password = "pass word"
  instcmds = ALL
"""

Result = Tuple[int, str, str]


def _clean(stderr: str) -> str:
    return "".join(line for line in stderr.splitlines(keepends=True)
                   if not line.startswith("Init SSL"))


class ClientVersusNUTTests(TestCase):
    """
    Each case runs NUT's tool and ours with the same arguments and compares
    exit status, stdout and stderr.
    """

    timeout = 120

    def setUp(self) -> None:
        require("/lib/nut/upsd", "/lib/nut/dummy-ups", UPSC, UPSCMD, UPSRW)
        # Short: the drivers' Unix socket paths must fit in 108 bytes.
        self.dir = tempfile.mkdtemp(prefix="nutcli-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        write(os.path.join(self.dir, "ups.conf"), UPS_CONF)
        write(os.path.join(self.dir, "dummy.dev"), DUMMY_DEV)
        write(os.path.join(self.dir, "other.dev"), "ups.status: OB\n")
        write(os.path.join(self.dir, "upsd.conf"), f"LISTEN 127.0.0.1 {self.port}\n")
        write(os.path.join(self.dir, "upsd.users"), UPSD_USERS, 0o600)
        real_driver(self, self.dir, "dummy")
        real_driver(self, self.dir, "other")
        real_upsd(self, self.dir, self.port)
        wait_for(self._ready, 30, "upsd to serve the dummy-ups data")

    def _ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                s.sendall(b"GET VAR dummy ups.status\nGET VAR other ups.status\n")
                data = b""
                while data.count(b"\n") < 2:
                    chunk = s.recv(4096)
                    if not chunk:
                        return False
                    data += chunk
        except OSError:
            return False
        return data == b'VAR dummy ups.status "OL CHRG"\nVAR other ups.status "OB"\n'

    async def _spawn(self, executable: str, args: List[str],
                   env: Optional[Dict[str, str]] = None) -> Result:
        out, err, code = await getProcessOutputAndValue(
            executable, args, env=env or dict(os.environ), reactor=reactor)
        return code, out.decode("utf-8", "replace"), _clean(err.decode("utf-8", "replace"))

    async def _theirs(self, tool: str, args: List[str]) -> Result:
        return await self._spawn(TOOLS[tool], args)

    async def _ours(self, tool: str, args: List[str]) -> Result:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [SOURCE_ROOT, env.get("PYTHONPATH")]))
        return await self._spawn(sys.executable, ["-m", "nutshim.client.cli", tool, *args], env)

    async def _compare(self, tool: str, *args: str) -> Result:
        theirs = await self._theirs(tool, list(args))
        ours = await self._ours(tool, list(args))
        self.assertEqual(ours, theirs, f"{tool} {' '.join(args)}")
        return ours

    def test_upsc(self) -> Deferred[None]:
        """
        upsc lists UPSes, variables, one variable, and reports errors in the
        same words.
        """

        async def go() -> None:
            h = self.host
            code, out, err = await self._compare("upsc", "-l", h)
            self.assertEqual(out, "dummy\nother\n")
            code, out, err = await self._compare("upsc", "-L", h)
            self.assertEqual(out, 'dummy: Crash "Dummy" #1\nother: Description unavailable\n')
            code, out, err = await self._compare("upsc", f"dummy@{h}")
            self.assertIn('ups.id: my "quoted" id\n', out)
            await self._compare("upsc", f"other@{h}")
            code, out, err = await self._compare("upsc", f"dummy@{h}", "ups.status")
            self.assertEqual(out, "OL CHRG\n")
            await self._compare("upsc", f"dummy@{h}", "server.info")
            code, out, err = await self._compare("upsc", f"dummy@{h}", "bogus.var")
            self.assertEqual((code, err), (1, "Error: Variable not supported by UPS\n"))
            code, out, err = await self._compare("upsc", f"nosuch@{h}")
            self.assertEqual(err, "Error: Unknown UPS\n")
            await self._compare("upsc", f"dummy@{h}", "upsstatus")
            await self._compare("upsc", f"dummy@{h}:")
            await self._compare("upsc")

        return Deferred.fromCoroutine(go())

    def test_upsc_clients(self) -> Deferred[None]:
        """
        upsc -c lists the addresses of logged-in clients.
        """

        async def go() -> None:
            with socket.create_connection(("127.0.0.1", self.port)) as s:
                s.sendall(b'USERNAME admin\nPASSWORD "mypass"\nLOGIN dummy\n')
                data = b""
                while data.count(b"\n") < 3:
                    data += s.recv(4096)
                code, out, err = await self._compare("upsc", "-c", f"dummy@{self.host}")
                self.assertEqual(out, "127.0.0.1\n")

        return Deferred.fromCoroutine(go())

    def test_connection_refused(self) -> Deferred[None]:
        """
        A closed port gives the same connection failure message.
        """

        async def go() -> None:
            closed = free_port()
            code, out, err = await self._compare("upsc", "-l", f"127.0.0.1:{closed}")
            self.assertEqual(err, "Error: Connection failure: Connection refused\n")

        return Deferred.fromCoroutine(go())

    def test_upscmd(self) -> Deferred[None]:
        """
        upscmd lists commands with descriptions and runs one (tracked or
        not), with the server's answer on stderr.
        """

        async def go() -> None:
            h = self.host
            code, out, err = await self._compare("upscmd", "-l", f"dummy@{h}")
            self.assertEqual(out, "Instant commands supported on UPS [dummy]:\n\n"
                                  "load.off - Turn off the load immediately\n")
            await self._compare("upscmd", "-l", f"nosuch@{h}")
            code, out, err = await self._compare(
                "upscmd", "-u", "admin", "-p", "mypass", f"dummy@{h}", "load.off")
            self.assertEqual((code, err), (0, "OK\n"))
            # dummy-ups answers load.off with "unknown": NUT still exits 0.
            code, out, err = await self._compare(
                "upscmd", "-u", "admin", "-p", "mypass", "-w", f"dummy@{h}", "load.off")
            self.assertEqual((code, err), (0, "ERR UNKNOWN\n"))
            code, out, err = await self._compare(
                "upscmd", "-u", "admin", "-p", "wrong", f"dummy@{h}", "load.off")
            self.assertEqual(err, "Unexpected response from upsd: ERR ACCESS-DENIED\n")
            await self._compare("upscmd", "-u", "admin", "-p", "mypass", f"dummy@{h}",
                                "load.on")
            await self._compare("upscmd", "-u", "admin", "-p", "mypass", f"dummy@{h}",
                                "loadoff")

        return Deferred.fromCoroutine(go())

    def test_password_with_space(self) -> Deferred[None]:
        """
        The one deliberate difference: NUT's upscmd sends C{PASSWORD pass
        word} unquoted (the server rejects it and the command then fails);
        nutshim-client quotes it and the command runs.
        """

        async def go() -> None:
            args = ["-u", "spacey", "-p", "pass word", f"dummy@{self.host}", "load.off"]
            theirs = await self._theirs("upscmd", args)
            self.assertEqual(theirs, (1, "", "Unexpected response from upsd: "
                                             "ERR PASSWORD-REQUIRED\n"))
            ours = await self._ours("upscmd", args)
            self.assertEqual(ours, (0, "", "OK\n"))

        return Deferred.fromCoroutine(go())

    def test_upsrw(self) -> Deferred[None]:
        """
        upsrw lists the writable variables in NUT's blocks and sets values
        (always quoted), tracked or not.
        """

        async def go() -> None:
            h = self.host
            code, out, err = await self._compare("upsrw", f"dummy@{h}")
            self.assertIn("[ups.id]\nUPS system identifier\nType: STRING\n"
                          'Maximum length: 16\nValue: my "quoted" id\n\n', out)
            await self._compare("upsrw", f"nosuch@{h}")
            for args in (
                ("-s", "ups.id=abc", "-u", "admin", "-p", "mypass", f"dummy@{h}"),
                ("-s", "ups.id=x y", "-u", "admin", "-p", "mypass", "-w", f"dummy@{h}"),
                ("-s", "ups.id=abcdefghijklmnopqrstuvwxyz", "-u", "admin", "-p", "mypass",
                 f"dummy@{h}"),
                ("-s", "ups.bogus=1", "-u", "admin", "-p", "mypass", f"dummy@{h}"),
                ("-s", "ups.id=1", "-u", "admin", "-p", "wrong", f"dummy@{h}"),
                ("-s", "upsid=1", "-u", "admin", "-p", "mypass", f"dummy@{h}"),
            ):
                await self._compare("upsrw", *args)

        return Deferred.fromCoroutine(go())
