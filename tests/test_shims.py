"""
The STARTTLS shims end to end, with the legacy pieces they exist for: NUT
2.8.0's own upsd and dummy-ups behind C{twistd nut-server-shim}, NUT's own
upsmon, upsc, upscmd, upsrw and python3-nut's PyNUTClient in front of
C{twistd nut-client-shim}, TLS 1.3 with client certificates in between, and
a recording proxy on the TLS leg to prove that nothing but C{STARTTLS} and
C{OK STARTTLS} crosses it in plaintext.

Then what goes wrong in real life: upsd restarted, the server shim
restarted, a wrong server certificate, a missing client certificate, 500
clients at once, and a client that stops reading a large UPS's lists.

Blocking by design, like the rest of tests/: real processes on 127.0.0.1
high ports, bounded waits.  A missing NUT binary skips a test, except in CI.
"""

from __future__ import annotations

import os
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from typing import Dict, List, Optional, Sequence

from twisted.trial.unittest import SynchronousTestCase

from tests.harness import (
    NUT_BIN,
    UPSD_USERS,
    free_port,
    nut_env,
    private_run,
    Process,
    query,
    real_driver,
    real_upsd,
    require,
    run,
    twistd,
    upsmon_conf,
    wait_for,
    write,
)


LAB_DEV = """
device.model: Shim Lab
ups.mfr: Acme
ups.status: OL
battery.charge: 100
ups.id: lab
"""

# OL long enough for both upsmons to log in, then on battery, then low.
OUTAGE_SEQ = """
ups.status: OL
battery.charge: 100
TIMER 15
ups.status: OB
battery.charge: 50
TIMER 5
ups.status: OB LB
battery.charge: 5
TIMER 600
"""

SECRETS = (b"USERNAME", b"PASSWORD", b"ups.status", b"LOGIN", b"pripw", b"secpw", b"adminpw")


def big_dev(count: int) -> str:
    """A UPS with C{count} extra variables (a LIST VAR of ~40 bytes each)."""
    lines = [LAB_DEV] + [f"ambient.x{i}.value: {i:08d}\n" for i in range(count)]
    return "".join(lines)


class RecordingProxy:
    """
    A TCP proxy on a loopback port that keeps every byte of every
    connection, per direction: C{up} (client to server) and C{down}.
    """

    def __init__(self, target: int) -> None:
        self.target = target
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.port = self.listener.getsockname()[1]
        self.sessions: List[Dict[str, bytearray]] = []
        self._sockets: List[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                conn.close()
                continue
            self._sockets += [conn, upstream]
            record = {"up": bytearray(), "down": bytearray()}
            self.sessions.append(record)
            for src, dst, key in ((conn, upstream, "up"), (upstream, conn, "down")):
                threading.Thread(target=self._pipe, args=(src, dst, record[key]), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket, buf: bytearray) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                buf.extend(data)
                dst.sendall(data)
        except OSError:
            pass
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        self.listener.close()
        for s in self._sockets:
            s.close()


def tls_records(data: bytes) -> List[int]:
    """
    The content types of the TLS records C{data} consists of (a last,
    incomplete record is allowed); fails on anything that is not TLS.
    """
    types = []
    pos = 0
    while pos + 5 <= len(data):
        kind, major, length = data[pos], data[pos + 1], int.from_bytes(data[pos + 3 : pos + 5], "big")
        if kind not in (20, 21, 22, 23) or major != 3 or length > 18432:
            raise AssertionError(f"not a TLS record at offset {pos}: {data[pos:pos + 16]!r}")
        types.append(kind)
        pos += 5 + length
    return types


def vmrss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


class ChainTestCase(SynchronousTestCase):
    """
    Builds C{upsd <- nut-server-shim <- [recording proxy] <- nut-client-shim}.
    """

    def setUp(self) -> None:
        require(os.path.join(NUT_BIN, "upsd"), os.path.join(NUT_BIN, "dummy-ups"))
        # Short: dummy-ups's socket path must fit in sun_path (108 bytes).
        self.dir = tempfile.mkdtemp(prefix="nutshim-shims-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.certs = os.path.join(self.dir, "certs")
        self.pki("init")
        self.pki("server", "localhost", "--san", "127.0.0.1")
        self.pki("client", "upsmon-box")
        self.pki("client", "upsmon-two")
        self.upsd_port = free_port()
        self.server_port = free_port()
        self.proxy: Optional[RecordingProxy] = None
        self.upsd: Optional[Process] = None
        self.server: Optional[Process] = None
        self.clients: Dict[str, Process] = {}

    def pki(self, *args: str, directory: Optional[str] = None) -> None:
        out = run([sys.executable, "-m", "nutshim.pki.cli", "--dir", directory or self.certs, *args])
        if out.returncode != 0:
            raise AssertionError(f"nutshim-pki {args} failed:\n{out.stdout}{out.stderr}")

    def cert(self, name: str) -> str:
        return os.path.join(self.certs, name + ".pem")

    def start_nut(self, upses: Dict[str, str]) -> None:
        """
        dummy-ups for each C{name: file content} (a .seq if it has TIMER),
        then NUT's upsd on C{upsd_port}.
        """
        sections = []
        for name, content in upses.items():
            filename = name + (".seq" if "TIMER" in content else ".dev")
            write(os.path.join(self.dir, filename), content)
            sections.append(f"[{name}]\n  driver = dummy-ups\n  port = {filename}\n")
        write(os.path.join(self.dir, "ups.conf"), "".join(sections))
        write(os.path.join(self.dir, "upsd.conf"), f"LISTEN 127.0.0.1 {self.upsd_port}\n", 0o600)
        write(os.path.join(self.dir, "upsd.users"), UPSD_USERS, 0o600)
        for name in upses:
            real_driver(self, self.dir, name)
        self.upsd = real_upsd(self, self.dir, self.upsd_port)
        for name in upses:
            self.wait_ready(name)

    def wait_ready(self, name: str) -> None:
        """
        Until upsd has the driver's data (it says C{WAIT} before).
        """
        ask = f"GET VAR {name} ups.status\n".encode()
        wait_for(
            lambda: query(self.upsd_port, ask).startswith(f"VAR {name} ups.status \"O".encode()),
            20,
            f"upsd to have {name}'s data",
        )

    def shim(self, plugin: str, tag: str, args: Sequence[str]) -> Process:
        """
        Start C{twistd -n PLUGIN ARGS} (the installed package) and wait
        until it listens.
        """
        log = os.path.join(self.dir, f"{tag}.log")
        serial = 1
        while os.path.exists(log):  # a restart: a log of its own
            serial += 1
            log = os.path.join(self.dir, f"{tag}-{serial}.log")
        proc = Process([twistd(), "-n", "--pidfile=", plugin, *args], log)
        self.addCleanup(proc.stop)
        wait_for(
            lambda: "Listening on" in proc.output() or not proc.alive(), 30, f"{tag} to listen"
        )
        if not proc.alive():
            raise AssertionError(f"{tag} did not start:\n{proc.output()}")
        return proc

    def start_server_shim(self, *extra: str) -> Process:
        self.server = self.shim(
            "nut-server-shim",
            "server-shim",
            [
                "--listen", f"tcp:{self.server_port}:interface=127.0.0.1",
                "--upstream", f"127.0.0.1:{self.upsd_port}",
                "--certfile", self.cert("localhost"),
                "--cafile", self.cert("ca"),
                "--require-client-cert",
                *extra,
            ],
        )
        return self.server

    def start_proxy(self) -> int:
        self.proxy = RecordingProxy(self.server_port)
        self.addCleanup(self.proxy.close)
        return self.proxy.port

    def start_client_shim(
        self, tag: str, *extra: str, certfile: Optional[str] = "upsmon-box", via_proxy: bool = True
    ) -> int:
        """
        A client shim for C{tag}; returns its local port.
        """
        port = free_port()
        remote = self.proxy.port if via_proxy and self.proxy else self.server_port
        args = [
            "--listen", f"tcp:{port}:interface=127.0.0.1",
            "--upstream", f"127.0.0.1:{remote}",
            *(extra or ("--cafile", self.cert("ca"))),
        ]
        if certfile:
            args += ["--certfile", self.cert(certfile)]
        self.clients[tag] = self.shim("nut-client-shim", f"client-shim-{tag}", args)
        return port

    def chain(self, upses: Dict[str, str], proxy: bool = True) -> int:
        """
        The whole chain; returns the client shim's port.
        """
        self.start_nut(upses)
        self.start_server_shim()
        if proxy:
            self.start_proxy()
        return self.start_client_shim("main")

    def tool(self, *args: str) -> "subprocess.CompletedProcess[str]":
        return run(list(args), env=nut_env(self.dir))

    def assertNoPlaintext(self, minimum_sessions: int = 1) -> None:
        """
        Every connection on the TLS leg: C{STARTTLS} / C{OK STARTTLS} in
        plaintext, then only TLS records, starting with a handshake, and
        none of the secrets anywhere.
        """
        assert self.proxy is not None
        sessions = [s for s in self.proxy.sessions if s["up"]]
        self.assertGreaterEqual(len(sessions), minimum_sessions)
        application = 0
        for record in sessions:
            up, down = bytes(record["up"]), bytes(record["down"])
            self.assertTrue(up.startswith(b"STARTTLS\n"), up[:40])
            self.assertTrue(down.startswith(b"OK STARTTLS\n"), down[:40])
            up, down = up[len(b"STARTTLS\n"):], down[len(b"OK STARTTLS\n"):]
            for data in (up, down):
                for secret in SECRETS:
                    self.assertNotIn(secret, data)
                if data:
                    self.assertEqual(data[0], 0x16, "the first record is not a handshake")
                application += tls_records(data).count(23)
        self.assertGreater(application, 0, "no application data went through TLS")


class ChainTests(ChainTestCase):
    """
    The full chain with NUT's own clients.
    """

    def test_upsmon_primary_secondary(self) -> None:
        """
        upsmon Primary and Secondary, each through its own client shim: both
        log in, the Primary sees OL, OB, OB LB and sets FSD, the Secondary
        sees FSD and shuts down, then the Primary; the TLS leg carries no
        plaintext.
        """
        upsmon = os.path.join(NUT_BIN, "upsmon")
        require(upsmon)
        self.start_nut({"sim": OUTAGE_SEQ})
        self.start_server_shim()
        self.start_proxy()
        ports = {
            "primary": self.start_client_shim("primary", certfile="upsmon-box"),
            "secondary": self.start_client_shim("secondary", certfile="upsmon-two"),
        }
        mons = {}
        for tag, user, pw, role in (
            ("secondary", "monsec", "secpw", "secondary"),
            ("primary", "monpri", "pripw", "primary"),
        ):
            mdir = os.path.join(self.dir, tag)
            os.makedirs(mdir)
            conf = upsmon_conf(self.dir, ports[tag], user, pw, role, tag)
            write(os.path.join(mdir, "upsmon.conf"), conf, 0o600)
            proc = Process(
                private_run(mdir, [upsmon, "-F", "-D"]),
                os.path.join(self.dir, f"upsmon-{tag}.log"),
                env=nut_env(mdir),
            )
            self.addCleanup(proc.stop)
            mons[tag] = proc
        wait_for(
            lambda: query(self.upsd_port, b"GET NUMLOGINS sim\n") == b"NUMLOGINS sim 2\n",
            15,
            "both upsmons logged in through the shims",
        )
        for tag in ("secondary", "primary"):
            wait_for(
                lambda: os.path.exists(os.path.join(self.dir, f"shutdown-{tag}")),
                60,
                f"{tag} SHUTDOWNCMD\n{mons[tag].output()}",
            )
        self.assertIn(b"FSD", query(self.upsd_port, b"GET VAR sim ups.status\n"))
        notes = open(os.path.join(self.dir, "notify-primary")).read()
        self.assertIn("ONBATT sim", notes)
        self.assertIn("LOWBATT sim", notes)
        self.assertIn("FSD sim", open(os.path.join(self.dir, "notify-secondary")).read())
        log = self.server.output() if self.server else ""
        self.assertIn("CN=upsmon-box", log)
        self.assertIn("CN=upsmon-two", log)
        self.assertNoPlaintext(minimum_sessions=2)

    def test_tools(self) -> None:
        """
        upsc, upscmd, upsrw and PyNUTClient work through the chain, and the
        TLS leg carries none of it in plaintext.
        """
        require("upsc", "upscmd", "upsrw")
        port = self.chain({"lab": LAB_DEV})
        host = f"lab@127.0.0.1:{port}"
        out = self.tool("upsc", host)
        self.assertIn("ups.id: lab\n", out.stdout, out.stderr)
        self.assertIn("ups.status: OL\n", out.stdout)
        out = self.tool("upsc", "-l", f"127.0.0.1:{port}")
        self.assertEqual(out.stdout, "lab\n", out.stderr)
        out = self.tool("upscmd", "-l", host)
        self.assertIn("load.off", out.stdout, out.stderr)
        out = self.tool("upscmd", "-u", "admin", "-p", "adminpw", host, "load.off")
        self.assertEqual(out.returncode, 0, out.stderr)
        out = self.tool("upscmd", "-u", "admin", "-p", "wrong", host, "load.off")
        self.assertIn("ACCESS-DENIED", out.stderr)
        out = self.tool("upsrw", "-s", "ups.id=rack-7", "-u", "admin", "-p", "adminpw", host)
        self.assertEqual(out.returncode, 0, out.stderr)
        wait_for(lambda: self.tool("upsc", host, "ups.id").stdout == "rack-7\n", 10, "ups.id set")
        out = self.tool("upsrw", host)
        self.assertIn("[ups.id]", out.stdout, out.stderr)
        require("/usr/bin/python3", "/usr/lib/python3/dist-packages/PyNUT.py")
        script = textwrap.dedent(
            f"""
            import sys
            sys.path.insert(0, "/usr/lib/python3/dist-packages")
            import PyNUT
            c = PyNUT.PyNUTClient(host="127.0.0.1", port={port}, login="admin", password="adminpw")
            print(sorted(c.GetUPSList()))
            print(c.GetUPSVars("lab")[b"ups.status"])
            print(sorted(c.GetUPSCommands("lab")))
            print(c.RunUPSCommand("lab", "load.off"))
            print(c.ver())
            """
        )
        out = run(["/usr/bin/python3", "-c", script])
        self.assertEqual(out.returncode, 0, out.stderr)
        lines = out.stdout.splitlines()
        self.assertEqual(lines[0], "[b'lab']")
        self.assertEqual(lines[1], "b'OL'")
        self.assertIn("load.off", lines[2])
        self.assertEqual(lines[3], "OK")
        self.assertIn("upsd 2.8.0", lines[4])
        self.assertNoPlaintext(minimum_sessions=8)


class FailureTests(ChainTestCase):
    """
    What goes wrong in real life, through the chain.
    """

    def connect(self, port: int) -> socket.socket:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.addCleanup(s.close)
        return s

    @staticmethod
    def ask(s: socket.socket, line: bytes) -> bytes:
        s.sendall(line)
        out = b""
        while not out.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            out += chunk
        return out

    def test_upsd_restart(self) -> None:
        """
        upsd killed under a connected client: the client's connection is
        closed; while upsd is down new clients get "Driver not connected";
        after upsd is back, new clients are served.
        """
        require("upsc")
        port = self.chain({"lab": LAB_DEV}, proxy=False)
        s = self.connect(port)
        self.assertEqual(self.ask(s, b"GET VAR lab ups.status\n"), b'VAR lab ups.status "OL"\n')
        assert self.upsd is not None
        self.upsd.stop()
        self.assertIn(self.ask(s, b"GET VAR lab ups.status\n"), (b"", b"ERR DRIVER-NOT-CONNECTED\n"))
        out = self.tool("upsc", f"lab@127.0.0.1:{port}", "ups.status")
        self.assertIn("Driver not connected", out.stderr)
        self.upsd = real_upsd(self, self.dir, self.upsd_port)
        self.wait_ready("lab")
        wait_for(
            lambda: self.tool("upsc", f"lab@127.0.0.1:{port}", "ups.status").stdout == "OL\n",
            20,
            "upsc through the chain after the restart",
        )
        self.assertIn("unreachable", self.server.output() if self.server else "")

    def test_server_shim_restart(self) -> None:
        """
        The server shim restarted under a running client shim: the connected
        client is closed, the client shim keeps running, and the next
        connection works.
        """
        require("upsc")
        port = self.chain({"lab": LAB_DEV}, proxy=False)
        s = self.connect(port)
        self.assertEqual(self.ask(s, b"GET VAR lab ups.status\n"), b'VAR lab ups.status "OL"\n')
        assert self.server is not None
        self.server.stop()
        self.assertIn(self.ask(s, b"GET VAR lab ups.status\n"), (b"", b"ERR DRIVER-NOT-CONNECTED\n"))
        out = self.tool("upsc", f"lab@127.0.0.1:{port}", "ups.status")
        self.assertNotEqual(out.returncode, 0)
        self.start_server_shim()
        out = self.tool("upsc", f"lab@127.0.0.1:{port}", "ups.status")
        self.assertEqual(out.stdout, "OL\n", out.stderr)
        self.assertTrue(self.clients["main"].alive())
        self.assertIn("unreachable", self.clients["main"].output())

    def test_wrong_server_certificate(self) -> None:
        """
        A server certificate from a CA the client shim does not trust, or
        not matching its pin, is refused before anything is sent; the log
        says why.
        """
        require("upsc")
        self.start_nut({"lab": LAB_DEV})
        self.start_server_shim()
        other = os.path.join(self.dir, "other")
        self.pki("init", directory=other)
        port = self.start_client_shim("stranger", "--cafile", os.path.join(other, "ca.pem"))
        out = self.tool("upscmd", "-u", "admin", "-p", "adminpw", f"lab@127.0.0.1:{port}", "load.off")
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("ERR DRIVER-NOT-CONNECTED", out.stderr)
        self.assertIn("server certificate not trusted", self.clients["stranger"].output())
        port = self.start_client_shim("pinned", "--pin", "sha256:" + "ab" * 32)
        out = self.tool("upsc", f"lab@127.0.0.1:{port}", "ups.status")
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("does not match --pin", self.clients["pinned"].output())
        self.assertIn("TLS handshake with", self.server.output() if self.server else "")

    def test_no_client_certificate(self) -> None:
        """
        A client shim without a certificate is refused by a server shim that
        requires one, and the server shim's log says so.
        """
        require("upsc")
        self.start_nut({"lab": LAB_DEV})
        self.start_server_shim()
        port = self.start_client_shim("anonymous", certfile=None)
        out = self.tool("upsc", f"lab@127.0.0.1:{port}", "ups.status")
        self.assertNotEqual(out.returncode, 0)
        wait_for(
            lambda: "no client certificate" in (self.server.output() if self.server else ""),
            10,
            "the server shim to log the missing certificate",
        )

    def test_500_clients(self) -> None:
        """
        500 clients at once through the whole chain are all answered, within
        60 seconds.
        """
        port = self.chain({"lab": LAB_DEV}, proxy=False)
        count = 500
        sel = selectors.DefaultSelector()
        replies: Dict[socket.socket, bytes] = {}
        start = time.monotonic()
        for _ in range(count):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            sel.register(s, selectors.EVENT_WRITE)
            replies[s] = b""
        done = 0
        while done < count and time.monotonic() - start < 60:
            for key, events in sel.select(timeout=1):
                s = key.fileobj  # type: ignore[assignment]
                if events & selectors.EVENT_WRITE:
                    s.send(b"GET VAR lab ups.status\n")  # type: ignore[attr-defined]
                    sel.modify(s, selectors.EVENT_READ)
                    continue
                data = s.recv(4096)  # type: ignore[attr-defined]
                replies[s] += data  # type: ignore[index]
                if not data or replies[s].endswith(b"\n"):  # type: ignore[index]
                    sel.unregister(s)
                    s.close()  # type: ignore[attr-defined]
                    done += 1
        elapsed = time.monotonic() - start
        answered = sum(1 for r in replies.values() if r == b'VAR lab ups.status "OL"\n')
        self.assertEqual(answered, count, f"{answered}/{count} answered in {elapsed:.1f} s")
        self.assertLess(elapsed, 60)

    def test_slow_reader(self) -> None:
        """
        A client that asks for a large UPS's variables over and over and
        never reads: the shims stop reading it (its sends block), their
        memory stays bounded, and other clients keep being served.
        """
        require("upsc")
        port = self.chain({"lab": LAB_DEV, "big": big_dev(2000)}, proxy=False)
        assert self.server is not None
        pids = {"server": self.server.proc.pid, "client": self.clients["main"].proc.pid}
        before = {k: vmrss_kib(p) for k, p in pids.items()}
        slow = socket.socket()
        self.addCleanup(slow.close)
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect(("127.0.0.1", port))
        slow.setblocking(False)
        request = b"LIST VAR big\n" * 1000
        sent = 0
        deadline = time.monotonic() + 30
        blocked = False
        while time.monotonic() < deadline and sent < 64 * 1024 * 1024:
            try:
                sent += slow.send(request)
            except BlockingIOError:
                # Give the shims a moment: still refused means they stopped reading.
                time.sleep(0.5)
                try:
                    sent += slow.send(request)
                except BlockingIOError:
                    blocked = True
                    break
        self.assertTrue(blocked, f"the shim kept reading ({sent} bytes of requests accepted)")
        for _ in range(5):
            t0 = time.monotonic()
            out = self.tool("upsc", f"lab@127.0.0.1:{port}", "ups.status")
            self.assertEqual(out.stdout, "OL\n", out.stderr)
            self.assertLess(time.monotonic() - t0, 5)
        self.assertEqual(query(self.upsd_port, b"GET VAR lab ups.status\n"), b'VAR lab ups.status "OL"\n')
        after = {k: vmrss_kib(p) for k, p in pids.items()}
        for name in pids:
            self.assertLess(
                after[name] - before[name], 64 * 1024,
                f"{name} shim grew from {before[name]} to {after[name]} KiB",
            )
