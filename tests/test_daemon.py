"""
nut-upsd as a process: the demo default, bad configuration, SIGHUP reload,
and the places where NUT 2.8.0's upsd stalls (a client that never reads, a
burst of connects, LIST replies).
"""

from __future__ import annotations

import os
import signal
import socket
import time

from twisted.trial.unittest import SynchronousTestCase

from tests.harness import free_port, nut_env, nutshim_daemon, query, run, twistd, wait_for, write

USERS = "[admin]\n  password = pw\n  actions = SET FSD\n  instcmds = ALL\n  upsmon primary\n"


def confdir_with(testcase: SynchronousTestCase, ups_conf: str, upsd_conf: str = "", users: str = USERS) -> str:
    confdir = os.path.abspath(testcase.mktemp())
    os.makedirs(confdir)
    write(os.path.join(confdir, "ups.conf"), ups_conf)
    write(os.path.join(confdir, "upsd.conf"), upsd_conf, 0o640)
    write(os.path.join(confdir, "upsd.users"), users, 0o640)
    return confdir


class DemoTests(SynchronousTestCase):
    """
    With no configuration at all, a simulated demo UPS.
    """

    def test_demo(self) -> None:
        """
        An empty configuration directory serves UPS "demo" and says so.
        """
        confdir = os.path.abspath(self.mktemp())
        os.makedirs(confdir)
        port = free_port()
        proc = nutshim_daemon(self, confdir, port)
        self.assertEqual(query(port, b"LIST UPS\n", b"END LIST UPS\n"),
                         b'BEGIN LIST UPS\nUPS demo "nutshim demo UPS (simulated)"\nEND LIST UPS\n')
        wait_for(lambda: b"OL" in query(port, b"GET VAR demo ups.status\n"), 10, "demo status")
        self.assertIn("serving the simulated demo UPS", proc.output())


class BadConfigTests(SynchronousTestCase):
    """
    A broken file stops the daemon with one clear line, not a traceback.
    """

    def test_bad_listen(self) -> None:
        """
        An unusable LISTEN port names file and line.
        """
        confdir = confdir_with(self, "[a]\n driver = nutshim-sim\n port = x.dev\n", "MAXAGE 15\nLISTEN 127.0.0.1 notaport\n")
        out = run([twistd(), "-n", "--pidfile=", "nut-upsd", "--confdir", confdir], env=nut_env(confdir))
        self.assertNotEqual(out.returncode, 0)
        text = out.stdout + out.stderr
        self.assertIn("upsd.conf:2", text)
        self.assertNotIn("Traceback", text)


class ReloadTests(SynchronousTestCase):
    """
    SIGHUP re-reads all three files without dropping clients.
    """

    def test_reload(self) -> None:
        """
        A new UPS appears (first, as in NUT), a changed description shows,
        new users can log in, and a connected client keeps its session and
        FSD latch.
        """
        confdir = confdir_with(self, '[a]\n driver = nutshim-sim\n port = a.dev\n desc = "one"\n')
        write(os.path.join(confdir, "a.dev"), "ups.status: OL\n")
        port = free_port()
        proc = nutshim_daemon(self, confdir, port)
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.addCleanup(s.close)
        s.sendall(b"USERNAME admin\nPASSWORD pw\nLOGIN a\nFSD a\n")
        got = b""
        while got.count(b"\n") < 4:
            got += s.recv(100)
        self.assertEqual(got, b"OK\nOK\nOK\nOK FSD-SET\n")
        write(os.path.join(confdir, "ups.conf"),
              '[a]\n driver = nutshim-sim\n port = a.dev\n desc = "two"\n[b]\n driver = nutshim-sim\n port = a.dev\n')
        write(os.path.join(confdir, "upsd.users"), USERS + "[new]\n  password = n\n  upsmon secondary\n", 0o640)
        proc.signal(signal.SIGHUP)
        wait_for(lambda: b"UPS b" in query(port, b"LIST UPS\n", b"END LIST UPS\n"), 10, "reload")
        self.assertEqual(query(port, b"LIST UPS\n", b"END LIST UPS\n"),
                         b'BEGIN LIST UPS\nUPS b "Description unavailable"\nUPS a "two"\nEND LIST UPS\n')
        self.assertEqual(query(port, b"USERNAME new\nPASSWORD n\nLOGIN b\n", b"OK\nOK\nOK\n"), b"OK\nOK\nOK\n")
        s.sendall(b"GET VAR a ups.status\nGET NUMLOGINS a\n")
        got = b""
        while got.count(b"\n") < 2:
            got += s.recv(100)
        self.assertEqual(got, b'VAR a ups.status "FSD OL"\nNUMLOGINS a 1\n')

    def test_bad_reload_keeps_running(self) -> None:
        """
        A reload with a broken file keeps the running configuration.
        """
        confdir = confdir_with(self, "[a]\n driver = nutshim-sim\n port = a.dev\n")
        write(os.path.join(confdir, "a.dev"), "ups.status: OL\n")
        port = free_port()
        proc = nutshim_daemon(self, confdir, port)
        write(os.path.join(confdir, "upsd.conf"), "LISTEN 127.0.0.1 99999999\n", 0o640)
        proc.signal(signal.SIGHUP)
        wait_for(lambda: "Reload failed" in proc.output(), 10, "reload failure logged")
        self.assertEqual(query(port, b"PROTVER\n"), b"1.3\n")


class StallTests(SynchronousTestCase):
    """
    Where NUT 2.8.0's upsd stalls, nutshim does not.
    """

    def setUp(self) -> None:
        self.confdir = confdir_with(self, "[big]\n driver = nutshim-sim\n port = big.dev\n")
        lines = [f"outlet.{i}.desc: outlet number {i} with a long description text" for i in range(400)]
        write(os.path.join(self.confdir, "big.dev"), "ups.status: OL\n" + "\n".join(lines) + "\n")
        self.port = free_port()
        self.proc = nutshim_daemon(self, self.confdir, self.port)
        wait_for(lambda: b"OL" in query(self.port, b"GET VAR big ups.status\n"), 10, "driver data")

    def test_client_that_never_reads(self) -> None:
        """
        A client pipelining LIST VAR without reading never delays another
        client, and the daemon's memory stays bounded.
        """
        hog = socket.socket()
        hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        hog.connect(("127.0.0.1", self.port))
        self.addCleanup(hog.close)
        hog.setblocking(False)
        sent = 0
        request = b"LIST VAR big\n" * 200
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                sent += hog.send(request)
            except BlockingIOError:
                time.sleep(0.05)
        # The daemon stopped reading the hog once its replies backed up:
        # the requests pile up in kernel buffers, not in the daemon (each
        # request asks for ~25 kB of reply).
        self.assertLess(sent, 16 * 1024 * 1024)
        for _ in range(20):
            self.assertEqual(query(self.port, b"GET VAR big ups.status\n"), b'VAR big ups.status "OL"\n')

    def test_burst_of_connects(self) -> None:
        """
        200 simultaneous connects are all accepted and answered (timings
        against NUT's backlog of 16 are in bench/).
        """
        socks = []
        for _ in range(200):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", self.port))
            socks.append(s)
        for s in socks:
            s.setblocking(True)
            s.settimeout(5)
            s.sendall(b"PROTVER\n")
        for s in socks:
            self.assertEqual(s.recv(10), b"1.3\n")
            s.close()
