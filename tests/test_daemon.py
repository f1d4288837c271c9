"""
nut-upsd as a process: the demo default, bad configuration, SIGHUP reload,
signals under every way twistd runs it, and the places where NUT 2.8.0's
upsd stalls (a client that never reads, a burst of connects, LIST replies).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from typing import Dict, List, Optional, Sequence

from twisted.trial.unittest import SynchronousTestCase

from tests.harness import (
    Process,
    free_port,
    nut_env,
    nutshim_daemon,
    query,
    require,
    run,
    twistd,
    wait_for,
    wait_port,
    write,
)

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
        self.assertIn("DEMO MODE: no UPS is defined in", proc.output())
        self.assertIn("SIMULATED UPS [demo]", proc.output())

    def test_fresh_machine(self) -> None:
        """
        On a machine without /etc/nut, C{twistd -n nut-upsd} with no option
        at all serves the demo on 127.0.0.1:3493 (the README's first
        command).  Run in private mount and network namespaces: /etc/nut
        hidden, port 3493 our own.
        """
        require("unshare", "ip")
        work = os.path.abspath(self.mktemp())
        os.makedirs(work)
        script = textwrap.dedent(
            f"""
            import os, socket, subprocess, sys, time
            orig = {os.path.join(work, "etc")!r}
            os.makedirs(orig)
            subprocess.check_call(["mount", "--bind", "/etc", orig])
            subprocess.check_call(["mount", "-t", "tmpfs", "tmpfs", "/etc"])
            for name in os.listdir(orig):
                if name != "nut":
                    os.symlink(os.path.join(orig, name), "/etc/" + name)
            subprocess.check_call(["ip", "link", "set", "lo", "up"])
            assert not os.path.exists("/etc/nut")
            log = open({os.path.join(work, "daemon.log")!r}, "wb")
            daemon = subprocess.Popen([{twistd()!r}, "-n", "nut-upsd"], stdout=log,
                                      stderr=subprocess.STDOUT, cwd={work!r})
            deadline = time.monotonic() + 30
            while True:
                try:
                    s = socket.create_connection(("127.0.0.1", 3493), timeout=1)
                    break
                except OSError:
                    if time.monotonic() > deadline or daemon.poll() is not None:
                        print("NOT STARTED")
                        sys.exit(1)
                    time.sleep(0.2)
            s.sendall(b"LIST UPS\\n")
            out = b""
            while not out.endswith(b"END LIST UPS\\n"):
                chunk = s.recv(1000)
                if not chunk:
                    break
                out += chunk
            print(out.decode())
            daemon.terminate()
            daemon.wait(10)
            """
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("NUT_")}
        out = run(["unshare", "--mount", "--net", "--propagation", "private",
                   sys.executable, "-c", script], env=env, timeout=60)
        with open(os.path.join(work, "daemon.log")) as f:
            log = f.read()
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr + log)
        self.assertIn('UPS demo "nutshim demo UPS (simulated)"', out.stdout, log)
        self.assertIn("DEMO MODE: no UPS is defined in /etc/nut/ups.conf", log)


def refused(testcase: SynchronousTestCase, args: Sequence[str], env: Dict[str, str],
            cwd: Optional[str] = None) -> str:
    """
    Run C{twistd -n nut-upsd ARGS}, which must stop at once: exit status
    1, nothing on standard output (no usage text, no log), exactly one line
    on standard error, starting C{nut-upsd: }.

    @return: that line.
    """
    out = subprocess.run([twistd(), "-n", "--pidfile=", "nut-upsd", *args], capture_output=True,
                         text=True, timeout=60, env=env, cwd=cwd)
    testcase.assertEqual((out.returncode, out.stdout), (1, ""), out.stderr)
    lines = out.stderr.splitlines()
    testcase.assertEqual(len(lines), 1, out.stderr)
    testcase.assertTrue(lines[0].startswith("nut-upsd: "), lines[0])
    return lines[0]


class BadConfigTests(SynchronousTestCase):
    """
    Everything NUT refuses stops the daemon with one line naming FILE:LINE
    on standard error and exit status 1: no traceback, no usage text.
    """

    def refuse(self, ups_conf: str, upsd_conf: str = "", users: str = USERS,
               args: Sequence[str] = ()) -> str:
        confdir = confdir_with(self, ups_conf, upsd_conf, users)
        line = refused(self, ["--confdir", confdir, *args], nut_env(confdir))
        return line.replace(confdir + "/", "")

    def test_bad_listen(self) -> None:
        """
        An unusable LISTEN port names file and line.
        """
        self.assertEqual(
            self.refuse("[a]\n driver = nutshim-sim\n port = x.dev\n", "MAXAGE 15\nLISTEN 127.0.0.1 notaport\n"),
            "nut-upsd: upsd.conf:2: LISTEN port must be a number from 0 to 65535, not 'notaport'",
        )

    def test_unresolvable_listen(self) -> None:
        """
        A LISTEN host that does not resolve: one line, not the traceback
        startService used to print.
        """
        line = self.refuse("[a]\n driver = nutshim-sim\n port = x.dev\n",
                           "LISTEN 127.0.0.1 3493\nLISTEN nosuchhost.invalid 3493\n")
        self.assertTrue(line.startswith(
            "nut-upsd: upsd.conf:2: LISTEN nosuchhost.invalid 3493: cannot resolve nosuchhost.invalid"), line)

    def test_listen_in_use(self) -> None:
        """
        A LISTEN whose port is taken: one line naming its line and the
        reason, exit status 1.
        """
        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        line = self.refuse("[a]\n driver = nutshim-sim\n port = x.dev\n", f"LISTEN 127.0.0.1 {port}\n")
        self.assertTrue(line.startswith(
            f"nut-upsd: upsd.conf:1: LISTEN 127.0.0.1 {port}: cannot listen on"
            f" tcp:{port}:interface=127.0.0.1:backlog=1024: Address already in use"), line)

    def test_unusable_sections(self) -> None:
        """
        A ups.conf whose sections are all unusable (no driver, a quote
        error) is refused, never served as the demo; the line is the
        line of the fault (an unbalanced quote on line 2 of 2 says 2).
        """
        self.assertEqual(self.refuse("[a]\n  desc = \"Server room\"\n"),
                         "nut-upsd: ups.conf:1: [a] has no driver and no port: NUT would ignore this UPS")
        self.assertEqual(
            self.refuse("[a]\n  desc = \"Server room\n"),
            "nut-upsd: ups.conf:2: parse error: quote not closed on this line"
            " (a quoted value may go on to the next line only after a backslash)",
        )

    def test_broken_users(self) -> None:
        """
        upsd.users with a broken section header stops the daemon (NUT
        would give that user's lines to the user above).
        """
        self.assertEqual(
            self.refuse("[a]\n driver = nutshim-sim\n port = x.dev\n", "", USERS + "[bob\n  password = b\n"),
            "nut-upsd: upsd.users:6: broken section header [bob: a user is [name], in one word",
        )

    def test_listen_tls_without_certificate(self) -> None:
        """
        A TLS-only listener without CERTFILE is refused.
        """
        line = self.refuse("[a]\n driver = nutshim-sim\n port = x.dev\n", "LISTEN_TLS 127.0.0.1 4401\n")
        self.assertTrue(line.startswith("nut-upsd: upsd.conf:1: LISTEN_TLS 127.0.0.1 4401 needs CERTFILE"), line)

    def test_missing_confdir(self) -> None:
        """
        An explicit configuration directory that does not exist, from
        --confdir or NUT_CONFPATH, is refused (not served as the demo).
        """
        missing = os.path.abspath(self.mktemp())
        env = {k: v for k, v in os.environ.items() if not k.startswith("NUT_")}
        self.assertEqual(refused(self, ["--confdir", missing], env),
                         f"nut-upsd: {missing}: no such configuration directory (--confdir)")
        self.assertEqual(refused(self, [], dict(env, NUT_CONFPATH=missing)),
                         f"nut-upsd: {missing}: no such configuration directory (NUT_CONFPATH)")

    def test_nut_reload_habit(self) -> None:
        """
        C{twistd nut-upsd -c reload}, NUT's habit, says how to reload.
        """
        cwd = os.path.abspath(self.mktemp())
        os.makedirs(cwd)
        line = refused(self, ["-c", "reload"], dict(os.environ), cwd=cwd)
        self.assertIn("-c is --confdir for nut-upsd", line)
        self.assertIn("SIGHUP", line)
        self.assertIn("systemctl reload nut-upsd", line)


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


#: Eight lines before the last two users, so that a broken line 8 is the
#: case of issue 10.
MANY_USERS = (
    "[admin]\n  password = pw\n  upsmon primary\n"
    "[u1]\n  password = p1\n  upsmon secondary\n"
    "[u2]\n  password = p2\n  upsmon secondary\n"
    "[u3]\n  password = p3\n  upsmon secondary\n"
)


def login(port: int, user: str, password: str) -> bytes:
    """
    USERNAME, PASSWORD, LOGIN: the three replies.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"USERNAME {user}\nPASSWORD {password}\nLOGIN a\n".encode())
        out = b""
        while out.count(b"\n") < 3:
            chunk = s.recv(1000)
            if not chunk:
                break
            out += chunk
        return out


class BrokenReloadTests(SynchronousTestCase):
    """
    A SIGHUP with a broken upsd.users keeps every running user (NUT: an
    unbalanced quote on line 8 locks out every user after it; a header
    missing its bracket silently drops that user).
    """

    def setUp(self) -> None:
        self.confdir = confdir_with(self, "[a]\n driver = nutshim-sim\n port = a.dev\n", "", MANY_USERS)
        write(os.path.join(self.confdir, "a.dev"), "ups.status: OL\n")
        self.port = free_port()
        self.proc = nutshim_daemon(self, self.confdir, self.port)

    def all_log_in(self) -> None:
        for user, password in (("admin", "pw"), ("u1", "p1"), ("u2", "p2"), ("u3", "p3")):
            self.assertEqual(login(self.port, user, password), b"OK\nOK\nOK\n", user)

    def reload_broken(self, users: str, where: str) -> None:
        self.all_log_in()
        write(os.path.join(self.confdir, "upsd.users"), users, 0o640)
        self.proc.signal(signal.SIGHUP)
        wait_for(lambda: "Reload failed" in self.proc.output(), 10, "the reload failure logged")
        [line] = [l for l in self.proc.output().splitlines() if "Reload failed" in l]
        self.assertIn(os.path.join(self.confdir, "upsd.users") + where, line)
        self.all_log_in()
        self.assertTrue(self.proc.alive())

    def test_unbalanced_quote_line_8(self) -> None:
        """
        An unbalanced quote on line 8: the log names upsd.users:8, every
        user still logs in.
        """
        text = MANY_USERS.replace("[u2]\n  password = p2", '[u2]\n  password = "p2')
        self.assertEqual(text.splitlines()[7], '  password = "p2')
        self.reload_broken(text, ":8: parse error: quote not closed")

    def test_header_missing_bracket(self) -> None:
        """
        A section header missing its C{]}: the log names its line, the
        user is not gone.
        """
        self.reload_broken(MANY_USERS.replace("[u3]", "[u3"), ":10: broken section header [u3")


def daemon_with(testcase: SynchronousTestCase, confdir: str, port: int, twistd_args: Sequence[str]) -> Process:
    """
    C{twistd -n TWISTD_ARGS nut-upsd} on 127.0.0.1:port, output in
    confdir/nutshim.log.
    """
    args = [twistd(), "-n", "--pidfile=", *twistd_args, "nut-upsd", "--confdir", confdir,
            "--listen", f"tcp:{port}:interface=127.0.0.1"]
    proc = Process(args, os.path.join(confdir, "nutshim.log"), env=nut_env(confdir))
    testcase.addCleanup(proc.stop)
    try:
        wait_port(port)
    except AssertionError:
        raise AssertionError("nut-upsd did not start:\n" + proc.output())
    return proc


class SignalTests(SynchronousTestCase):
    """
    SIGHUP, SIGUSR1 and SIGUSR2 never end nut-upsd, however twistd runs it:
    a connected client stays connected and answered.  SIGHUP reloads;
    with --logfile, SIGUSR1 still rotates the log (twistd's handler is
    kept); otherwise SIGUSR1 and SIGUSR2 are logged and ignored.
    """

    def survive(self, twistd_args: Sequence[str]) -> str:
        """
        Signal a daemon run with C{twistd_args} (C{CONFDIR} replaced);
        return its configuration directory.
        """
        confdir = confdir_with(self, "[a]\n driver = nutshim-sim\n port = a.dev\n")
        write(os.path.join(confdir, "a.dev"), "ups.status: OL\n")
        port = free_port()
        args = [a.replace("CONFDIR", confdir) for a in twistd_args]
        proc = daemon_with(self, confdir, port, args)
        client = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.addCleanup(client.close)
        for sig in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGHUP):
            proc.signal(sig)
            time.sleep(0.5)
            self.assertTrue(proc.alive(), f"{sig!r} ended nut-upsd:\n{proc.output()}")
            client.sendall(b"GET VAR a ups.status\n")
            got = b""
            while not got.endswith(b"\n"):
                chunk = client.recv(100)
                self.assertTrue(chunk, f"connection closed after {sig!r}")
                got += chunk
            self.assertEqual(got, b'VAR a ups.status "OL"\n', sig)
        self.assertEqual(query(port, b"PROTVER\n"), b"1.3\n")
        return confdir

    def test_nodaemon(self) -> None:
        """
        C{twistd -n}, logging to standard output: nobody else handles the
        signals; SIGHUP reloads, the user signals are logged and ignored.
        """
        confdir = self.survive([])
        with open(os.path.join(confdir, "nutshim.log")) as f:
            log = f.read()
        self.assertIn("nut-upsd: SIGUSR1 received and ignored", log)
        self.assertIn("nut-upsd: SIGUSR2 received and ignored", log)
        self.assertEqual(log.count("Reloading configuration"), 2)

    def test_logfile(self) -> None:
        """
        C{--logfile}: SIGUSR1 rotates the log file, as twistd does; SIGHUP
        still reloads.
        """
        confdir = self.survive(["--logfile", "CONFDIR/twistd.log"])
        self.assertTrue(os.path.exists(os.path.join(confdir, "twistd.log.1")), os.listdir(confdir))
        logs = ""
        for name in ("twistd.log.1", "twistd.log"):
            with open(os.path.join(confdir, name)) as f:
                logs += f.read()
        self.assertEqual(logs.count("Reloading configuration"), 2)
        self.assertIn("nut-upsd: SIGUSR2 received and ignored", logs)

    def test_syslog(self) -> None:
        """
        C{--syslog}: the log goes to syslog, the signals still do no harm.
        """
        self.survive(["--syslog", "--prefix", "nut-upsd-test"])


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
