"""
systemd readiness against a real C{twistd -n nut-upsd}: the test plays
systemd's side of C{NOTIFY_SOCKET} (a Unix datagram socket it binds) and
checks what arrives, when.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from typing import List, Optional

from twisted.trial.unittest import SynchronousTestCase

from tests.harness import Process, free_port, nut_env, query, real_driver, twistd, write

USERS = "[admin]\n  password = pw\n  upsmon primary\n"


class NotifySocket:
    """
    systemd's end: a datagram socket, in the abstract namespace or at a path.
    """

    def __init__(self, testcase: SynchronousTestCase, abstract: bool = True) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        testcase.addCleanup(self.sock.close)
        if abstract:
            name = f"nutshim-notify-{os.getpid()}-{id(self)}"
            self.sock.bind("\0" + name)
            self.env = "@" + name
        else:
            # A short directory: trial's are too long for a socket path.
            import tempfile

            directory = tempfile.mkdtemp(prefix="nsn-")
            path = os.path.join(directory, "notify")
            self.sock.bind(path)
            testcase.addCleanup(os.rmdir, directory)
            testcase.addCleanup(os.unlink, path)
            self.env = path
        self.received: List[List[str]] = []

    def next(self, timeout: float = 20.0, skip_watchdog: bool = True) -> List[str]:
        """
        The next notification's fields (watchdog pings counted and skipped).
        """
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no notification within {timeout} s; got {self.received}")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            fields = data.decode().split("\n")
            self.received.append(fields)
            if skip_watchdog and fields == ["WATCHDOG=1"]:
                continue
            return fields

    def pings(self, seconds: float) -> int:
        """
        WATCHDOG=1 datagrams received during C{seconds} (others kept).
        """
        count = 0
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return count
            self.sock.settimeout(left)
            try:
                fields = self.sock.recv(4096).decode().split("\n")
            except socket.timeout:
                return count
            self.received.append(fields)
            count += fields == ["WATCHDOG=1"]


def field(fields: List[str], key: str) -> Optional[str]:
    for f in fields:
        if f.startswith(key + "="):
            return f[len(key) + 1:]
    return None


class ReadinessTests(SynchronousTestCase):
    def confdir(self, ups_conf: str, upsd_conf: str) -> str:
        confdir = os.path.abspath(self.mktemp())
        os.makedirs(confdir)
        write(os.path.join(confdir, "ups.conf"), ups_conf)
        write(os.path.join(confdir, "upsd.conf"), upsd_conf, 0o640)
        write(os.path.join(confdir, "upsd.users"), USERS, 0o640)
        return confdir

    def daemon(self, confdir: str, notify: NotifySocket, watchdog_usec: Optional[int] = None,
               watchdog_pid: Optional[str] = None) -> Process:
        extra = {"NOTIFY_SOCKET": notify.env}
        if watchdog_usec is not None:
            extra["WATCHDOG_USEC"] = str(watchdog_usec)
        if watchdog_pid is not None:
            extra["WATCHDOG_PID"] = watchdog_pid
        proc = Process([twistd(), "-n", "--pidfile=", "nut-upsd", "--confdir", confdir],
                       os.path.join(confdir, "nutshim.log"), env=nut_env(confdir, extra))
        self.addCleanup(proc.stop)
        return proc

    def test_life(self) -> None:
        """
        READY=1 once listening with data, RELOADING=1/READY=1 around
        SIGHUP (applied or refused), STOPPING=1 on SIGTERM, and watchdog
        pings all along at half of WATCHDOG_USEC.
        """
        port = free_port()
        confdir = self.confdir('[lab]\n driver = nutshim-sim\n port = lab.dev\n',
                               f"LISTEN 127.0.0.1 {port}\n")
        notify = NotifySocket(self)
        proc = self.daemon(confdir, notify, watchdog_usec=400000)
        ready = notify.next()
        # When READY=1 arrives, the daemon serves, with data.
        self.assertEqual(query(port, b"GET VAR lab ups.status\n"), b'VAR lab ups.status "OL"\n')
        self.assertEqual(ready, ["READY=1", "STATUS=1 UPS, 0 clients"])
        self.assertGreaterEqual(notify.pings(1.0), 3)

        proc.signal(signal.SIGHUP)
        reloading = notify.next()
        self.assertEqual(reloading[0], "RELOADING=1")
        monotonic = field(reloading, "MONOTONIC_USEC")
        assert monotonic is not None
        self.assertLess(abs(int(monotonic) - time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000), 30e6)
        self.assertEqual(notify.next(), ["READY=1", "STATUS=1 UPS, 0 clients"])

        write(os.path.join(confdir, "upsd.conf"), f"LISTEN 127.0.0.1 {port}\nMAXLINE 1\n", 0o640)
        proc.signal(signal.SIGHUP)
        self.assertEqual(notify.next()[0], "RELOADING=1")
        refused = notify.next()
        self.assertEqual(refused[0], "READY=1")
        self.assertIn("reload refused", field(refused, "STATUS") or "")

        proc.signal(signal.SIGTERM)
        self.assertEqual(notify.next(), ["STOPPING=1", "STATUS=Stopping"])
        proc.proc.wait(20)
        kinds = [f[0] for f in notify.received if f != ["WATCHDOG=1"]]
        self.assertEqual(kinds, ["READY=1", "RELOADING=1", "READY=1", "RELOADING=1", "READY=1",
                                 "STOPPING=1"])

    def test_waits_for_driver(self) -> None:
        """
        A NUT driver that starts late holds READY=1 until it delivered;
        the watchdog is off without WATCHDOG_USEC, and off for another
        WATCHDOG_PID.
        """
        port = free_port()
        confdir = self.confdir('[late]\n driver = dummy-ups\n port = late.dev\n',
                               f"LISTEN 127.0.0.1 {port}\nMAXAGE 30\n")
        write(os.path.join(confdir, "late.dev"), "ups.status: OB\nbattery.charge: 42\n")
        notify = NotifySocket(self, abstract=False)
        self.daemon(confdir, notify, watchdog_usec=200000, watchdog_pid="1")
        self.assertRaises(AssertionError, notify.next, 3.0)
        real_driver(self, confdir, "late")
        ready = notify.next(30)
        self.assertEqual(ready, ["READY=1", "STATUS=1 UPS (1 on battery), 0 clients"])
        self.assertEqual(query(port, b"GET VAR late battery.charge\n"), b'VAR late battery.charge "42"\n')
        self.assertNotIn(["WATCHDOG=1"], notify.received)

    def test_ready_without_driver(self) -> None:
        """
        A driver that never comes does not hold READY=1 past MAXAGE; the
        status names it.
        """
        port = free_port()
        confdir = self.confdir('[nothere]\n driver = dummy-ups\n port = x.dev\n',
                               f"LISTEN 127.0.0.1 {port}\nMAXAGE 2\n")
        notify = NotifySocket(self)
        started = time.monotonic()
        self.daemon(confdir, notify)
        ready = notify.next()
        self.assertGreaterEqual(time.monotonic() - started, 2.0)
        self.assertEqual(ready, ["READY=1",
                                 "STATUS=1 UPS, 1 without data, 0 clients (no data yet from nothere)"])


UPSMON_CONF = """\
MONITOR lab@127.0.0.1:{port} 1 admin pw primary
MINSUPPLIES 1
SHUTDOWNCMD "/bin/true"
POLLFREQ 1
POLLFREQALERT 1
DEADTIME {deadtime}
POWERDOWNFLAG {dir}/killpower
"""


class UpsmonReadinessTests(SynchronousTestCase):
    """
    The same protocol from C{twistd -n nut-upsmon}.
    """

    def setUp(self) -> None:
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)

    def upsmon(self, port: int, notify: NotifySocket, deadtime: int = 15,
               watchdog_usec: Optional[int] = None) -> Process:
        conf = write(os.path.join(self.dir, "upsmon.conf"),
                     UPSMON_CONF.format(port=port, dir=self.dir, deadtime=deadtime), 0o600)
        extra = {"NOTIFY_SOCKET": notify.env}
        if watchdog_usec is not None:
            extra["WATCHDOG_USEC"] = str(watchdog_usec)
        proc = Process([twistd(), "-n", "--pidfile=", "nut-upsmon", "--config", conf],
                       os.path.join(self.dir, "upsmon.log"), env=nut_env(self.dir, extra))
        self.addCleanup(proc.stop)
        return proc

    def test_life(self) -> None:
        """
        READY=1 once the UPS answered its first poll (the status line says
        how it is), RELOADING=1/READY=1 around SIGHUP, STOPPING=1 on
        SIGTERM, watchdog pings at half of WATCHDOG_USEC.
        """
        port = free_port()
        write(os.path.join(self.dir, "ups.conf"), "[lab]\n driver = nutshim-sim\n port = lab.dev\n")
        write(os.path.join(self.dir, "upsd.conf"), f"LISTEN 127.0.0.1 {port}\n", 0o640)
        write(os.path.join(self.dir, "upsd.users"), USERS, 0o640)
        upsd = Process([twistd(), "-n", "--pidfile=", "nut-upsd", "--confdir", self.dir],
                       os.path.join(self.dir, "upsd.log"), env=nut_env(self.dir))
        self.addCleanup(upsd.stop)
        from tests.harness import wait_port
        wait_port(port)
        notify = NotifySocket(self)
        proc = self.upsmon(port, notify, watchdog_usec=400000)
        self.assertEqual(notify.next(), ["READY=1", "STATUS=1 UPS monitored (1 online)"])
        self.assertGreaterEqual(notify.pings(1.0), 3)
        proc.signal(signal.SIGHUP)
        self.assertEqual(notify.next()[0], "RELOADING=1")
        self.assertEqual(notify.next()[0], "READY=1")
        proc.signal(signal.SIGTERM)
        self.assertEqual(notify.next(), ["STOPPING=1", "STATUS=Stopping"])
        proc.proc.wait(20)

    def test_server_down(self) -> None:
        """
        A server that does not answer holds READY=1 for DEADTIME at most:
        upsmon runs (and reports the lost contact) instead of failing the
        unit.
        """
        notify = NotifySocket(self)
        started = time.monotonic()
        self.upsmon(free_port(), notify, deadtime=3)
        ready = notify.next()
        self.assertGreaterEqual(time.monotonic() - started, 3.0)
        self.assertEqual(ready[0], "READY=1")
        self.assertIn("no contact", field(ready, "STATUS") or "")


class ShimReadinessTests(SynchronousTestCase):
    """
    The same protocol from both shims: READY=1 once listening (a shim has
    no data to wait for), RELOADING=1/READY=1 around SIGHUP, STOPPING=1.
    """

    def setUp(self) -> None:
        import sys
        import subprocess

        self.dir = os.path.abspath(self.mktemp())
        self.certs = os.path.join(self.dir, "certs")
        os.makedirs(self.dir)
        for args in (["init"], ["server", "localhost", "--san", "127.0.0.1"], ["client", "box"]):
            out = subprocess.run([sys.executable, "-m", "nutshim.pki.cli", "--dir", self.certs, *args],
                                 capture_output=True, text=True)
            self.assertEqual(out.returncode, 0, out.stdout + out.stderr)

    def life(self, plugin: str, args: List[str]) -> None:
        notify = NotifySocket(self)
        proc = Process([twistd(), "-n", "--pidfile=", plugin, *args],
                       os.path.join(self.dir, plugin + ".log"),
                       env=nut_env(self.dir, {"NOTIFY_SOCKET": notify.env, "WATCHDOG_USEC": "400000"}))
        self.addCleanup(proc.stop)
        self.assertEqual(notify.next(), ["READY=1", "STATUS=0 sessions"])
        self.assertIn("Listening on", proc.output())
        self.assertGreaterEqual(notify.pings(1.0), 3)
        proc.signal(signal.SIGHUP)
        self.assertEqual(notify.next()[0], "RELOADING=1")
        self.assertEqual(notify.next(), ["READY=1", "STATUS=0 sessions"])
        proc.signal(signal.SIGTERM)
        self.assertEqual(notify.next(), ["STOPPING=1", "STATUS=Stopping"])
        proc.proc.wait(20)

    def test_server_shim(self) -> None:
        self.life("nut-server-shim", [
            "--listen", f"tcp:{free_port()}:interface=127.0.0.1",
            "--upstream", f"127.0.0.1:{free_port()}",
            "--certfile", os.path.join(self.certs, "localhost.pem"),
            "--cafile", os.path.join(self.certs, "ca.pem"), "--require-client-cert"])

    def test_client_shim(self) -> None:
        self.life("nut-client-shim", [
            "--listen", f"tcp:{free_port()}:interface=127.0.0.1",
            "--upstream", f"127.0.0.1:{free_port()}",
            "--cafile", os.path.join(self.certs, "ca.pem"),
            "--certfile", os.path.join(self.certs, "box.pem")])
