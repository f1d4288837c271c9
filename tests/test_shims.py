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

import hashlib
import os
import selectors
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from typing import Dict, List, Optional, Sequence, Tuple

from twisted.trial.unittest import SynchronousTestCase

from tests.harness import (
    NUT_BIN,
    UPSD_USERS,
    free_port,
    nut_env,
    private_run,
    Process,
    nutshim_daemon,
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


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def upsd_connections(port: int) -> int:
    """
    The established TCP connections a server on 127.0.0.1:C{port} has
    accepted, from /proc/net/tcp.
    """
    count = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local, state = fields[1], fields[3]
            if state == "01" and local == f"0100007F:{port:04X}":
                count += 1
    return count


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

    def shim(
        self, plugin: str, tag: str, args: Sequence[str], twistd_args: Sequence[str] = (),
        port: Optional[int] = None,
    ) -> Process:
        """
        Start C{twistd -n [TWISTD_ARGS] PLUGIN ARGS} (the installed package)
        and wait until it listens (on C{port}, when its log goes elsewhere).
        """
        log = os.path.join(self.dir, f"{tag}.log")
        serial = 1
        while os.path.exists(log):  # a restart: a log of its own
            serial += 1
            log = os.path.join(self.dir, f"{tag}-{serial}.log")
        proc = Process([twistd(), "-n", "--pidfile=", *twistd_args, plugin, *args], log)
        self.addCleanup(proc.stop)
        if port is not None and twistd_args:
            wait_for(lambda: port_open(port) or not proc.alive(), 30, f"{tag} to listen")
        else:
            wait_for(
                lambda: "Listening on" in proc.output() or not proc.alive(), 30, f"{tag} to listen"
            )
        if not proc.alive():
            raise AssertionError(f"{tag} did not start:\n{proc.output()}")
        return proc

    def start_server_shim(self, *extra: str, twistd_args: Sequence[str] = (),
                          certfile: Optional[str] = None) -> Process:
        self.server = self.shim(
            "nut-server-shim",
            "server-shim",
            [
                "--listen", f"tcp:{self.server_port}:interface=127.0.0.1",
                "--upstream", f"127.0.0.1:{self.upsd_port}",
                "--certfile", certfile or self.cert("localhost"),
                "--cafile", self.cert("ca"),
                "--require-client-cert",
                *extra,
            ],
            twistd_args,
            self.server_port,
        )
        return self.server

    def start_proxy(self) -> int:
        self.proxy = RecordingProxy(self.server_port)
        self.addCleanup(self.proxy.close)
        return self.proxy.port

    def start_client_shim(
        self, tag: str, *extra: str, certfile: Optional[str] = "upsmon-box", via_proxy: bool = True,
        twistd_args: Sequence[str] = (), remote: Optional[int] = None,
    ) -> int:
        """
        A client shim for C{tag}; returns its local port.  C{certfile} is a
        certificate's name, or a path.
        """
        port = free_port()
        if remote is None:
            remote = self.proxy.port if via_proxy and self.proxy else self.server_port
        args = [
            "--listen", f"tcp:{port}:interface=127.0.0.1",
            "--upstream", f"127.0.0.1:{remote}",
            *(extra or ("--cafile", self.cert("ca"))),
        ]
        if certfile:
            args += ["--certfile", certfile if os.sep in certfile else self.cert(certfile)]
        self.clients[tag] = self.shim("nut-client-shim", f"client-shim-{tag}", args, twistd_args, port)
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


class StalledReaderTests(ChainTestCase):
    """
    Many clients that ask for a large UPS's variables and never read: what
    each costs the client shim stays bounded (docs/shims.md).
    """

    def test_twenty_stalled_readers(self) -> None:
        """
        20 stalled readers of a 2,000-variable UPS (each LIST VAR reply is
        ~80 KB) grow the client shim by less than 10 MiB in all (measured:
        6.5-7 MiB; 14-27 MiB when it read MAX_OUTSTANDING replies ahead for
        each); other clients are served meanwhile.
        """
        require("upsc")
        port = self.chain({"lab": LAB_DEV, "big": big_dev(2000)}, proxy=False)
        for _ in range(3):
            query(port, b"LIST VAR big\n", until=b"END LIST VAR big\n", timeout=20)
        time.sleep(1)
        pid = self.clients["main"].proc.pid
        before = vmrss_kib(pid)
        readers = []
        for _ in range(20):
            s = socket.socket()
            self.addCleanup(s.close)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(("127.0.0.1", port))
            s.setblocking(False)
            readers.append(s)
        request = b"LIST VAR big\n" * 5000
        pending = list(readers)
        deadline = time.monotonic() + 30
        while pending and time.monotonic() < deadline:
            still = []
            for s in pending:
                try:
                    while True:
                        s.send(request)
                except BlockingIOError:
                    # Still refused a moment later: the shim stopped reading it.
                    still.append(s)
            time.sleep(0.5)
            pending = []
            for s in still:
                try:
                    s.send(request)
                    pending.append(s)
                except BlockingIOError:
                    pass
        self.assertEqual(len(pending), 0, "the shim kept reading")
        time.sleep(3)
        grown = vmrss_kib(pid) - before
        self.assertLess(grown, 10 * 1024, f"the client shim grew by {grown} KiB for 20 readers")
        out = self.tool("upsc", f"lab@127.0.0.1:{port}", "ups.status")
        self.assertEqual(out.stdout, "OL\n", out.stderr)

def first_certificate_sha256(pem_path: str) -> str:
    """The SHA-256 of the first certificate in a PEM file, in hex."""
    with open(pem_path) as f:
        text = f.read()
    start = text.index("-----BEGIN CERTIFICATE-----")
    end = text.index("-----END CERTIFICATE-----", start) + len("-----END CERTIFICATE-----")
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(text[start:end])).hexdigest()


def read_until_eof(s: socket.socket, timeout: float = 90.0) -> Tuple[bytes, Optional[float]]:
    """
    Everything until EOF, and the seconds from C{OK Goodbye} to EOF.
    """
    s.settimeout(timeout)
    data = b""
    seen: Optional[float] = None
    while True:
        try:
            chunk = s.recv(4096)
        except (ssl.SSLError, ConnectionError):
            chunk = b""
        if not chunk:
            break
        data += chunk
        if seen is None and b"OK Goodbye\n" in data:
            seen = time.monotonic()
    return data, (time.monotonic() - seen) if seen is not None else None


class ShimTLSClientMixin(ChainTestCase):
    """
    A TLS client of the server shim, as NUT's own TLS clients are: STARTTLS,
    then a verified handshake with a client certificate.
    """

    def tls_session(self, certfile: str = "upsmon-box") -> ssl.SSLSocket:
        raw = socket.create_connection(("127.0.0.1", self.server_port), timeout=10)
        self.addCleanup(raw.close)
        raw.sendall(b"STARTTLS\n")
        answer = b""
        while not answer.endswith(b"\n"):
            chunk = raw.recv(1)
            if not chunk:
                raise AssertionError(f"closed after {answer!r}")
            answer += chunk
        self.assertEqual(answer, b"OK STARTTLS\n")
        ctx = ssl.create_default_context(cafile=self.cert("ca"))
        ctx.load_cert_chain(self.cert(certfile))
        tls = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        self.addCleanup(tls.close)
        return tls

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


class SignalTests(ShimTLSClientMixin):
    """
    SIGHUP, SIGUSR1 and SIGUSR2 never end a shim, however twistd runs it
    (the systemd units run it as C{twistd --nodaemon --pidfile=}, without a
    log file): SIGHUP reloads, the others are ignored unless twistd rotates
    its log file on SIGUSR1; an open session survives them all.
    """

    def check(self, mode: str) -> None:
        require("upsc")
        logs: Dict[str, str] = {}

        def twistd_args(tag: str) -> List[str]:
            if mode == "logfile":
                logs[tag] = os.path.join(self.dir, f"{tag}-twistd.log")
                return ["--logfile", logs[tag]]
            if mode == "syslog":
                return ["--syslog", "--prefix", f"nutshim-test-{tag}"]
            return []

        self.start_nut({"lab": LAB_DEV})
        self.start_server_shim(twistd_args=twistd_args("server"))
        port = self.start_client_shim("main", via_proxy=False, twistd_args=twistd_args("client"))
        session = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.addCleanup(session.close)
        self.assertEqual(self.ask(session, b"GET VAR lab ups.status\n"), b'VAR lab ups.status "OL"\n')
        shims = {"server": self.server, "client": self.clients["main"]}
        for sig in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGHUP):
            for proc in shims.values():
                assert proc is not None
                proc.signal(sig)
            time.sleep(1)
            for name, proc in shims.items():
                assert proc is not None
                self.assertTrue(proc.alive(), f"{name} shim died of {sig!r}:\n{proc.output()}")
            self.assertEqual(self.ask(session, b"GET VAR lab ups.status\n"),
                             b'VAR lab ups.status "OL"\n', f"after {sig!r}")
        out = self.tool("upsc", f"lab@127.0.0.1:{port}", "ups.status")
        self.assertEqual(out.stdout, "OL\n", out.stderr)
        if mode == "logfile":
            for tag, path in logs.items():
                # twistd's own SIGUSR1 handler (log rotation) was kept.
                wait_for(lambda: os.path.exists(path + ".1"), 10, f"{tag} log rotated")
                text = open(path).read() + open(path + ".1").read()
                self.assertIn("reloaded", text)
        elif mode == "plain":
            for proc in shims.values():
                assert proc is not None
                self.assertIn("SIGUSR1 received and ignored", proc.output())
                self.assertIn("reloaded", proc.output())

    def test_plain(self) -> None:
        """C{twistd -n}, logging to stdout (the systemd units)."""
        self.check("plain")

    def test_logfile(self) -> None:
        """C{twistd -n --logfile FILE}: SIGUSR1 rotates the log."""
        self.check("logfile")

    def test_syslog(self) -> None:
        """C{twistd -n --syslog}."""
        self.check("syslog")


class ReloadTests(ShimTLSClientMixin):
    """
    SIGHUP swaps certificates for the next session; a bad one is refused
    and the old one kept; open sessions go on.
    """

    def test_server_certificate_swap(self) -> None:
        require("upsc")
        self.start_nut({"lab": LAB_DEV})
        live = os.path.join(self.dir, "live.pem")
        shutil.copy(self.cert("localhost"), live)
        self.start_server_shim(certfile=live)
        port = self.start_client_shim("main", via_proxy=False)
        old = self.tls_session()
        self.assertEqual(hashlib.sha256(old.getpeercert(True)).hexdigest(),
                         first_certificate_sha256(self.cert("localhost")))
        self.pki("server", "renewed", "--san", "127.0.0.1")
        shutil.copy(self.cert("renewed"), live)
        assert self.server is not None
        self.server.signal(signal.SIGHUP)
        wait_for(lambda: "reloaded" in self.server.output() if self.server else False, 10, "reload")
        new = self.tls_session()
        self.assertEqual(hashlib.sha256(new.getpeercert(True)).hexdigest(),
                         first_certificate_sha256(self.cert("renewed")))
        self.assertEqual(self.ask(old, b"GET VAR lab ups.status\n"), b'VAR lab ups.status "OL"\n')
        out = self.tool("upsc", f"lab@127.0.0.1:{port}", "ups.status")
        self.assertEqual(out.stdout, "OL\n", out.stderr)
        with open(live, "w") as f:
            f.write("not a certificate\n")
        self.server.signal(signal.SIGHUP)
        wait_for(lambda: "reload refused" in self.server.output() if self.server else False, 10,
                 "the refusal")
        line = [x for x in self.server.output().splitlines() if "reload refused" in x][0]
        self.assertIn(f"{live}: --certfile: not a PEM file", line)
        self.assertTrue(self.server.alive())
        again = self.tls_session()
        self.assertEqual(hashlib.sha256(again.getpeercert(True)).hexdigest(),
                         first_certificate_sha256(self.cert("renewed")))
        self.assertEqual(self.ask(again, b"GET VAR lab ups.status\n"), b'VAR lab ups.status "OL"\n')
        self.assertEqual(self.ask(new, b"GET VAR lab ups.status\n"), b'VAR lab ups.status "OL"\n')

    def test_client_certificate_swap(self) -> None:
        require("upsc")
        self.start_nut({"lab": LAB_DEV})
        self.start_server_shim()
        live = os.path.join(self.dir, "client-live.pem")
        shutil.copy(self.cert("upsmon-box"), live)
        port = self.start_client_shim("main", via_proxy=False, certfile=live)
        out = self.tool("upsc", f"lab@127.0.0.1:{port}", "ups.status")
        self.assertEqual(out.stdout, "OL\n", out.stderr)
        shutil.copy(self.cert("upsmon-two"), live)
        client = self.clients["main"]
        client.signal(signal.SIGHUP)
        wait_for(lambda: "reloaded" in client.output(), 10, "reload")
        out = self.tool("upsc", f"lab@127.0.0.1:{port}", "ups.status")
        self.assertEqual(out.stdout, "OL\n", out.stderr)
        wait_for(lambda: "CN=upsmon-two" in (self.server.output() if self.server else ""), 10,
                 "the server shim to see the new client certificate")
        with open(live, "w") as f:
            f.write("junk\n")
        client.signal(signal.SIGHUP)
        wait_for(lambda: "reload refused" in client.output(), 10, "the refusal")
        self.assertIn(f"{live}: --certfile: not a PEM file", client.output())
        out = self.tool("upsc", f"lab@127.0.0.1:{port}", "ups.status")
        self.assertEqual(out.stdout, "OL\n", out.stderr)
        self.assertTrue(client.alive())


class LogoutTests(ShimTLSClientMixin):
    """
    EOF within a second of C{OK Goodbye}, through both shims.
    """

    def test_through_both_shims(self) -> None:
        """
        NUT 2.8.0's upsd behind the server shim, a plaintext client of the
        client shim, and a TLS client of the server shim.
        """
        port = self.chain({"lab": LAB_DEV}, proxy=False)
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.addCleanup(s.close)
        s.sendall(b"GET VAR lab ups.status\nLOGOUT\n")
        data, delay = read_until_eof(s)
        self.assertEqual(data, b'VAR lab ups.status "OL"\nOK Goodbye\n')
        self.assertIsNotNone(delay)
        self.assertLess(delay, 1.0)
        tls = self.tls_session()
        tls.sendall(b"LOGOUT\n")
        data, delay = read_until_eof(tls)
        self.assertEqual(data, b"OK Goodbye\n")
        self.assertLess(delay, 1.0)

    def test_client_shim_in_front_of_nut_upsd(self) -> None:
        """
        The client shim straight to nut-upsd's own STARTTLS: LOGOUT and
        DETACH end the legacy client's session at C{OK Goodbye} (the shim
        closes it, whatever the server does).
        """
        confdir = os.path.join(self.dir, "nutshim")
        os.makedirs(confdir)
        write(os.path.join(confdir, "lab.dev"), LAB_DEV)
        write(os.path.join(confdir, "ups.conf"), "[lab]\n  driver = nutshim-sim\n  port = lab.dev\n")
        write(os.path.join(confdir, "upsd.conf"), f"CERTFILE {self.cert('localhost')}\n", 0o600)
        write(os.path.join(confdir, "upsd.users"), UPSD_USERS, 0o600)
        upsd_port = free_port()
        nutshim_daemon(self, confdir, upsd_port)
        port = self.start_client_shim("direct", via_proxy=False, remote=upsd_port)
        for verb in (b"LOGOUT", b"DETACH", b"logout"):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            self.addCleanup(s.close)
            s.sendall(b"GET VAR lab ups.status\n" + verb + b"\n")
            data, delay = read_until_eof(s)
            self.assertEqual(data, b'VAR lab ups.status "OL"\nOK Goodbye\n', verb)
            self.assertIsNotNone(delay, verb)
            self.assertLess(delay, 1.0, verb)


class StartErrorTests(ChainTestCase):
    """
    A bad certificate or option file stops a shim before it starts: one
    line naming the file, exit status 1, no usage text, no traceback.
    """

    def test_one_line(self) -> None:
        junk = write(os.path.join(self.dir, "junk.pem"), "junk\n")
        allow = write(os.path.join(self.dir, "allow"), "192.0.2.0/24\nnot-a-network\n")
        for args, start in (
            (["nut-server-shim", "--certfile", junk], f"nut-server-shim: {junk}: --certfile: not a PEM"),
            (["nut-server-shim", "--certfile", self.cert("localhost"), "--allow-file", allow],
             f"nut-server-shim: {allow}:2: --allow-file: "),
            (["nut-client-shim", "--upstream", "127.0.0.1", "--cafile", junk],
             f"nut-client-shim: {junk}: --cafile: not a PEM"),
            (["nut-client-shim", "--upstream", "127.0.0.1", "--cafile", self.cert("ca"),
              "--certfile", self.cert("ca")], f"nut-client-shim: {self.cert('ca')}: --certfile: "),
        ):
            out = run([twistd(), "-n", "--pidfile=", *args])
            text = (out.stdout + out.stderr).strip()
            self.assertEqual(out.returncode, 1, text)
            self.assertTrue(text.startswith(start), text)
            self.assertEqual(len(text.splitlines()), 1, text)
            self.assertNotIn("Usage", text)
            self.assertNotIn("Traceback", text)


class StrangerTests(ShimTLSClientMixin):
    """
    Connections that never get TLS up hold no upsd connection, and do not
    keep a client with a certificate from being served.
    """

    def test_silent_connections(self) -> None:
        self.start_nut({"lab": LAB_DEV})
        self.start_server_shim()
        count = 1100
        silent = []
        for _ in range(count):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", self.server_port))
            silent.append(s)
            self.addCleanup(s.close)
        assert self.server is not None
        server = self.server
        wait_for(
            lambda: "More than 1024 connections without TLS" in server.output()
            or upsd_connections(self.upsd_port) > 0,
            30,
            "the server shim to take every silent connection",
        )
        self.assertEqual(upsd_connections(self.upsd_port), 0)
        start = time.monotonic()
        tls = self.tls_session()
        self.assertEqual(self.ask(tls, b"GET VAR lab ups.status\n"), b'VAR lab ups.status "OL"\n')
        elapsed = time.monotonic() - start
        self.assertLess(elapsed, 2.0)
        self.assertEqual(upsd_connections(self.upsd_port), 1)
