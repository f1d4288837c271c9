# -*- test-case-name: tests.test_driver_socket_integration -*-
"""
NUT's driver socket protocol against NUT's own programs.

The unit tests check nutshim's side of the driver socket against what the
reference says NUT does; these check it against NUT 2.8.0 itself, with real
processes and real Unix sockets in a temporary directory:

 - nutshim's L{SocketDriver} (upsd's side) reads a real C{dummy-ups};
 - C{nutshim-driver} (a driver's side) is read by NUT's C C{upsd}, and NUT's
   C{upsc}, C{upsrw} and C{upscmd} see and drive the simulated UPS.

They are skipped when NUT is not installed, except on CI (C{CI=true}), where
a missing NUT is a failure.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import SkipTest, TestCase

import nutshim
from nutshim.drivers.socketdriver import SocketDriver

UPSD = "/lib/nut/upsd"
DUMMY_UPS = "/lib/nut/dummy-ups"
UPSC = "/usr/bin/upsc"
UPSRW = "/usr/bin/upsrw"
UPSCMD = "/usr/bin/upscmd"
#: Longest wait for anything to happen.
TIMEOUT = 30.0

#: The directory holding the C{nutshim} package, for the child's PYTHONPATH.
SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(nutshim.__file__)))


def require_nut() -> None:
    if not os.path.exists(UPSD) and os.environ.get("CI") != "true":
        raise SkipTest("NUT is not installed (%s missing)" % (UPSD,))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def user() -> str:
    return pwd.getpwuid(os.getuid()).pw_name


async def wait_for(what: str, check: Callable[[], Any], timeout: float = TIMEOUT) -> Any:
    """
    Poll C{check} every 0.1 s until it returns something true.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %s s waiting for %s" % (timeout, what))
        await deferLater(reactor, 0.1, lambda: None)


class NutSandbox:
    """
    A private NUT configuration and state directory, and its processes.
    """

    def __init__(self, case: TestCase) -> None:
        self.case = case
        # Not under _trial_temp: a Unix socket path must fit in 108 bytes.
        self.dir = tempfile.mkdtemp(prefix="nutshim-it-")
        case.addCleanup(shutil.rmtree, self.dir, True)
        os.chmod(self.dir, 0o755)
        self.names: Dict[int, str] = {}
        self.env = dict(os.environ, NUT_CONFPATH=self.dir, NUT_STATEPATH=self.dir,
                        NUT_ALTPIDPATH=self.dir)
        self.env["PYTHONPATH"] = os.pathsep.join(
            [SOURCE_ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])

    def write(self, name: str, text: str, mode: int = 0o644) -> str:
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def spawn(self, name: str, argv: Sequence[str]) -> "subprocess.Popen[bytes]":
        log = open(os.path.join(self.dir, name + ".log"), "wb")
        proc = subprocess.Popen(list(argv), env=self.env, cwd=self.dir, stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.names[proc.pid] = name
        self.case.addCleanup(self.kill, proc)
        return proc

    def kill(self, proc: "subprocess.Popen[bytes]") -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)

    def log(self, name: str) -> str:
        try:
            with open(os.path.join(self.dir, name + ".log"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def socket_ready(self, name: str, proc: "subprocess.Popen[bytes]") -> bool:
        if proc.poll() is not None:
            log = self.names[proc.pid]
            raise AssertionError("%s exited with %s:\n%s" % (log, proc.returncode, self.log(log)))
        # Only look: NUT 2.8.0's drivers abort (SIGABRT, "bit out of range
        # 0 - FD_SETSIZE on fd_set") at their next broadcast after a client
        # connected and went away, so no probing connection here.  A socket
        # file not yet listening is fine: both upsds retry.
        try:
            return stat.S_ISSOCK(os.stat(os.path.join(self.dir, name)).st_mode)
        except OSError:
            return False

    async def run(self, argv: Sequence[str]) -> str:
        result: Tuple[bytes, bytes, int] = await getProcessOutputAndValue(
            argv[0], list(argv[1:]), env=self.env)
        out, err, code = result
        text = (out + err).decode("utf-8", "replace")
        return text + ("" if code == 0 else "\n[exit %s]" % (code,))


class SocketDriverAgainstDummyUpsTests(TestCase):
    """
    nutshim's upsd side of the socket, reading NUT's C{dummy-ups}.
    """

    timeout = 90

    def setUp(self) -> None:
        require_nut()

    async def test_readsDummyUps(self) -> None:
        """
        L{SocketDriver} connects to a real C{dummy-ups} socket, mirrors its
        dump (values, flags, aux, commands), sees its live updates, and gets
        the result of a tracked SET back.
        """
        box = NutSandbox(self)
        box.write("ups.conf", "[dummy]\n\tdriver = dummy-ups\n\tport = test.dev\n")
        # dummy-ups copies ups.model to device.model.
        dev = box.write("test.dev", 'ups.status: OL\nups.model: "Smart UPS 1500"\n'
                                    "battery.charge: 90\n")
        proc = box.spawn("dummy", [DUMMY_UPS, "-a", "dummy", "-u", user(), "-F"])
        await wait_for("the dummy-ups socket",
                       lambda: box.socket_ready("dummy-ups-dummy", proc))

        driver = SocketDriver("dummy", "dummy-ups", box.dir, reactor, maxage=15)
        results: List[Any] = []
        driver.tracking_listener = lambda i, r: results.append((i, r))
        driver.start()
        self.addCleanup(driver.stop)

        def value(name: str) -> Optional[str]:
            var = driver.state.get(name)
            return None if var is None else var.value

        await wait_for("the dump", lambda: value("device.model") == "Smart UPS 1500")
        self.assertTrue(driver.connected)
        self.assertFalse(driver.stale)
        self.assertEqual(value("ups.status"), "OL")
        self.assertEqual(value("driver.name"), "dummy-ups")
        self.assertTrue(driver.state.has_command("load.off"))
        status = driver.state.get("ups.status")
        assert status is not None
        self.assertEqual(status.type_words(), ["RW", "STRING:32"])

        self.assertTrue(driver.setvar("battery.charge", "42", "TRACK-1"))
        await wait_for("the tracked SET", lambda: results)
        self.assertEqual(results, [("TRACK-1", 0)])
        self.assertEqual(value("battery.charge"), "42")

        # dummy-ups re-reads a .dev file when it changes.
        with open(dev, "w") as f:
            f.write('ups.status: OB LB\nups.model: "Smart UPS 1500"\nbattery.charge: 9\n')
        await wait_for("the live update", lambda: value("ups.status") == "OB LB")

        box.kill(proc)
        await wait_for("the disconnection", lambda: not driver.connected)
        self.assertEqual(len(driver.state), 0)


class NutshimDriverUnderNutUpsdTests(TestCase):
    """
    C{nutshim-driver} serving a simulated UPS to NUT's C upsd and tools.
    """

    timeout = 120

    def setUp(self) -> None:
        require_nut()

    async def test_upscSeesSimulatedUps(self) -> None:
        """
        NUT's upsd reads C{nutshim-driver}'s socket: C{upsc} lists the
        simulated variables, C{upsrw} changes one, C{upscmd} runs a declared
        command and both report the driver's tracking result; a stale socket
        file left behind is replaced.
        """
        box = NutSandbox(self)
        port = free_port()
        box.write("ups.conf", '[sim]\n\tdriver = nutshim-sim\n\tport = sim.dev\n'
                              '\tdesc = "nutshim simulation"\n')
        box.write("sim.dev", 'ups.status: OL\nups.model: "Sim 1000"\nbattery.charge: 100\n'
                             "RANGE battery.charge 0 100\n"
                             "CMD beeper.enable ups.beeper.status: enabled\n")
        box.write("upsd.conf", "LISTEN 127.0.0.1 %d\n" % (port,))
        box.write("upsd.users", "[admin]\n\tpassword = secret\n\tactions = SET\n"
                                "\tinstcmds = ALL\n", 0o600)
        # A socket file left behind by a driver that died.
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(os.path.join(box.dir, "nutshim-sim-sim"))
        stale.close()

        driver = box.spawn("driver", [sys.executable, "-m", "nutshim.drivers.runner",
                                      "-a", "sim"])
        await wait_for("the nutshim-driver socket",
                       lambda: box.socket_ready("nutshim-sim-sim", driver))
        upsd = box.spawn("upsd", [UPSD, "-u", user(), "-F"])

        async def upsc() -> str:
            return await box.run([UPSC, "sim@127.0.0.1:%d" % (port,)])

        outputs: List[str] = []

        async def poll_upsc() -> None:
            deadline = time.monotonic() + TIMEOUT
            while time.monotonic() < deadline:
                if upsd.poll() is not None:
                    raise AssertionError("upsd exited:\n" + box.log("upsd"))
                outputs.append(await upsc())
                # NUT's upsd serves a dump while it arrives: wait for its end
                # (ups.status replaces the WAIT upsd shows until then).
                if "device.model: Sim 1000" in outputs[-1] and "ups.status: OL" in outputs[-1]:
                    return
                await deferLater(reactor, 0.2, lambda: None)
            raise AssertionError("upsc never saw the UPS:\n%s\n%s\n%s" % (
                outputs[-1:], box.log("upsd"), box.log("driver")))

        await poll_upsc()
        out = outputs[-1]
        for line in ("ups.status: OL", "battery.charge: 100", "driver.name: nutshim-sim",
                     "device.model: Sim 1000", "ups.mfr: Dummy Manufacturer"):
            self.assertIn(line, out.splitlines())
        self.assertIn("nutshim simulation",
                      await box.run([UPSC, "-l", "127.0.0.1:%d" % (port,)]) +
                      await box.run([UPSC, "-L", "127.0.0.1:%d" % (port,)]))

        # SET through NUT's upsd, tracked (upsrw waits for the result).
        out = await box.run([UPSRW, "-s", "battery.charge=55", "-u", "admin", "-p", "secret",
                             "-w", "-t", "10", "sim@127.0.0.1:%d" % (port,)])
        self.assertIn("SUCCESS", out)
        self.assertIn("battery.charge: 55", (await upsc()).splitlines())
        # A declared instant command runs and its effect is published; one
        # the simulation does not declare is UNKNOWN (as in dummy-ups).
        out = await box.run([UPSCMD, "-u", "admin", "-p", "secret", "-w", "-t", "10",
                             "sim@127.0.0.1:%d" % (port,), "beeper.enable"])
        self.assertIn("SUCCESS", out)
        self.assertIn("ups.beeper.status: enabled", (await upsc()).splitlines())
        out = await box.run([UPSCMD, "-u", "admin", "-p", "secret", "-w", "-t", "10",
                             "sim@127.0.0.1:%d" % (port,), "load.off"])
        self.assertIn("UNKNOWN", out)
