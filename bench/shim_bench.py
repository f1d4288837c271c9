#!/usr/bin/env python3
"""
What the STARTTLS shims cost: NUT 2.8.0's upsd reached directly versus
through C{nut-client-shim -> TLS 1.3 -> nut-server-shim -> upsd}, and how
many TLS handshakes the server shim completes per second.  Not a test: it
prints a table (recorded in docs/shims.md).

Measured, at 1, 100 and 1000 clients (C{--conns}):

 - GET VAR requests per second and p50/p99 latency on persistent
   connections, one request outstanding per connection (bench/loadgen.c
   "steady"), direct and through both shims;
 - connect + GET VAR + close cycles per second (loadgen "connect"): through
   the shims every cycle is a new TLS 1.3 connection with a client
   certificate, so this is the chain's handshake rate as a legacy client
   sees it;
 - full TLS handshakes per second at the server shim alone: connect,
   STARTTLS, handshake verifying the server, PROTVER, close
   (bench/nutload.c "handshake"; no client certificate);
 - CPU seconds used by each shim per run (C{/proc}), and their resident
   memory after the 1000-connection runs.

Placement on a two-core machine: upsd, dummy-ups and the server shim on
CPU 0 (the UPS host), the client shim and the load generator on CPU 1 (the
upsmon host).  In production the two shims run on different machines, so a
shim's CPU time per request is the figure to carry over, not the raw rate.

The load generators are C (epoll, non-blocking), compiled on first use by
the helpers of bench/upsd_bench.py and bench/tls_bench.py, which this
script reuses.

Usage (as root: NUT's programs stay root, the open-files limit rises)::

    python3 bench/shim_bench.py [--python /tmp/inst-shim/bin/python] [--quick]

The anchor (RFC 9271 Appendix D.2's own alternative): the same chain built
from Debian's stunnel4 -- a stunnel client (C{client = yes}) in front of a
stunnel server in front of the same upsd, implicit TLS 1.3 only, with the
same certificates and C{verifyChain}/C{checkHost} in both directions (the
server requires and verifies the client certificate, as the server shim
with C{--require-client-cert} does).  GET VAR on persistent connections is
run alternately through both chains (C{--repeat} rounds, interleaved, so
that a neighbour's load hits both alike) and the medians are printed side
by side: rate, p50/p99, and each pair's relay CPU per request -- the CPU
time (C{/proc/<pid>/stat} utime+stime) of both relay processes over the
run, warm-up included, divided by every reply the load generator got.

    python3 bench/shim_bench.py --compare-only --conns 1,100
"""

from __future__ import annotations

import statistics

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from typing import Callable, Dict, List, Optional, Sequence, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from tls_bench import build_client, run_c  # noqa: E402
from upsd_bench import (  # noqa: E402
    Server,
    ask,
    build_loadgen,
    fmt_us,
    free_port,
    loadgen,
    rss_kib,
    sandbox,
    wait_for,
)

CLIENT_CPU = 1


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pki(python: str, directory: str, *args: str) -> None:
    subprocess.run([python, "-m", "nutshim.pki.cli", "--dir", directory, *args], check=True,
                   stdout=subprocess.DEVNULL)


class Chain:
    """
    dummy-ups, NUT's upsd, two server shims (with and without required
    client certificates) and a client shim, in a private directory.
    """

    def __init__(self, root: str, python: str, nut_bin: str, pin: bool) -> None:
        self.root = root
        self.procs: List[Server] = []
        twistd = os.path.join(os.path.dirname(python), "twistd")
        certs = os.path.join(root, "certs")
        pki(python, certs, "init")
        pki(python, certs, "server", "localhost", "--san", "127.0.0.1")
        pki(python, certs, "client", "bench-client")
        self.cafile = os.path.join(certs, "ca.pem")
        self.upsd_port, self.server_port, self.open_port, self.client_port = (
            free_port(), free_port(), free_port(), free_port())
        sandbox(root, self.upsd_port)
        env = dict(os.environ, NUT_CONFPATH=root, NUT_STATEPATH=root, NUT_ALTPIDPATH=root)
        as_root = ["-u", "root"] if os.geteuid() == 0 else []
        self.start("dummy-ups", [os.path.join(nut_bin, "dummy-ups"), *as_root, "-F", "-a", "ups"], 0, env, pin)
        wait_for("the driver socket", lambda: os.path.exists(os.path.join(root, "dummy-ups-ups")))
        self.upsd = self.start("upsd", [os.path.join(nut_bin, "upsd"), *as_root, "-F"], self.upsd_port, env, pin)
        wait_for("upsd data", lambda: ask(self.upsd_port, b"GET VAR ups ups.status\n").startswith(b"VAR "))
        shim = [python, twistd, "-n", "--pidfile="]
        server = ["nut-server-shim", "--upstream", f"127.0.0.1:{self.upsd_port}",
                  "--certfile", os.path.join(certs, "localhost.pem")]
        self.server = self.start(
            "server-shim",
            [*shim, "--logfile", os.path.join(root, "server-shim.log"), *server,
             "--listen", f"tcp:{self.server_port}:interface=127.0.0.1",
             "--cafile", self.cafile, "--require-client-cert"],
            self.server_port, env, pin)
        self.open_server = self.start(
            "server-shim-open",
            [*shim, "--logfile", os.path.join(root, "server-shim-open.log"), *server,
             "--listen", f"tcp:{self.open_port}:interface=127.0.0.1"],
            self.open_port, env, pin)
        self.client = self.start(
            "client-shim",
            [*shim, "--logfile", os.path.join(root, "client-shim.log"), "nut-client-shim",
             "--listen", f"tcp:{self.client_port}:interface=127.0.0.1",
             "--upstream", f"127.0.0.1:{self.server_port}", "--cafile", self.cafile,
             "--certfile", os.path.join(certs, "bench-client.pem")],
            self.client_port, env, False)
        if pin:
            os.sched_setaffinity(self.client.proc.pid, {CLIENT_CPU})
        wait_for("the chain", lambda: ask(self.client_port, b"GET VAR ups ups.status\n").startswith(b"VAR "))

    def start(self, name: str, args: List[str], port: int, env: Dict[str, str], pin: bool) -> Server:
        server = Server(name, args, port, env, os.path.join(self.root, f"{name}.out"), pin)
        self.procs.append(server)
        return server

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


class Stunnel:
    """
    The stunnel pair: a client on C{client_port} -> implicit TLS 1.3 ->
    a server on C{server_port} -> upsd, both verifying the peer's chain
    and name.
    """

    def __init__(self, chain: Chain, binary: str, pin: bool) -> None:
        root = chain.root
        certs = os.path.join(root, "certs")
        self.server_port, self.client_port = free_port(), free_port()
        common = "foreground = yes\npid =\nsyslog = no\ndebug = 5\n"
        tls = ("sslVersionMin = TLSv1.3\nsslVersionMax = TLSv1.3\n"
               f"CAfile = {chain.cafile}\nverifyChain = yes\n")
        server_conf = os.path.join(root, "stunnel-server.conf")
        with open(server_conf, "w") as f:
            f.write(common + f"output = {root}/stunnel-server.log\n[nut]\n"
                    f"accept = 127.0.0.1:{self.server_port}\nconnect = 127.0.0.1:{chain.upsd_port}\n"
                    f"cert = {os.path.join(certs, 'localhost.pem')}\n" + tls
                    + "requireCert = yes\ncheckHost = bench-client\nsocket = a:TCP_NODELAY=1\n"
                    "socket = r:TCP_NODELAY=1\n")
        client_conf = os.path.join(root, "stunnel-client.conf")
        with open(client_conf, "w") as f:
            f.write(common + f"output = {root}/stunnel-client.log\n[nut]\nclient = yes\n"
                    f"accept = 127.0.0.1:{self.client_port}\nconnect = 127.0.0.1:{self.server_port}\n"
                    f"cert = {os.path.join(certs, 'bench-client.pem')}\n" + tls
                    + "checkHost = localhost\nsocket = a:TCP_NODELAY=1\nsocket = r:TCP_NODELAY=1\n")
        env = dict(os.environ)
        self.server = chain.start("stunnel-server", [binary, server_conf], self.server_port, env, pin)
        self.client = chain.start("stunnel-client", [binary, client_conf], self.client_port, env, False)
        if pin:
            os.sched_setaffinity(self.client.proc.pid, {CLIENT_CPU})
        wait_for("the stunnel chain",
                 lambda: ask(self.client_port, b"GET VAR ups ups.status\n").startswith(b"VAR "))


def compare(chain: Chain, tunnel: Stunnel, counts: List[int], seconds: float, repeat: int,
            pin: bool) -> None:
    """
    GET VAR through the nutshim pair and the stunnel pair, interleaved,
    C{repeat} rounds; print the medians side by side.
    """
    pairs = {"nutshim": (chain.client_port, (chain.client.proc.pid, chain.server.proc.pid)),
             "stunnel": (tunnel.client_port, (tunnel.client.proc.pid, tunnel.server.proc.pid))}
    got: Dict[Tuple[str, int], List[Dict[str, float]]] = {}
    for count in counts:
        warm = ["-w", f"{min(30.0, 1 + count / 100):g}"]
        for n in range(repeat):
            # Alternate which goes first, so neither always runs warm.
            order = list(pairs) if n % 2 == 0 else list(reversed(pairs))
            for name in order:
                port, pids = pairs[name]
                before = [cpu_seconds(p) for p in pids]
                r = loadgen(port, ["-m", "steady", "-c", str(count), "-d", f"{seconds:g}", *warm],
                            pin, seconds + 120)
                used = [cpu_seconds(p) - b for p, b in zip(pids, before)]
                total = r.get("total") or r["requests"]
                r["client_us"], r["server_us"] = (u / total * 1e6 for u in used)
                r["relay_us"] = r["client_us"] + r["server_us"]
                got.setdefault((name, count), []).append(r)
                print(f"  {name} {count:4} clients round {n + 1}: {r['rps']:8.0f}/s p50 {fmt_us(r['p50_us'])}"
                      f" p99 {fmt_us(r['p99_us'])} relay CPU {r['relay_us']:.0f} µs/request"
                      f" errors {r.get('errors', 0):.0f}", flush=True)
    rows: List[Tuple[str, ...]] = [("clients", "pair", "requests/s", "p50", "p99", "relay CPU/request",
                                    "client side", "server side", "rate vs stunnel", "CPU vs stunnel")]
    for count in counts:
        med = {name: {k: statistics.median(r[k] for r in got[(name, count)])
                      for k in ("rps", "p50_us", "p99_us", "relay_us", "client_us", "server_us")}
               for name in pairs}
        for name in pairs:
            m = med[name]
            rows.append((str(count), name, f"{m['rps']:,.0f}", fmt_us(m["p50_us"]), fmt_us(m["p99_us"]),
                         f"{m['relay_us']:.0f} µs", f"{m['client_us']:.0f} µs", f"{m['server_us']:.0f} µs",
                         f"{m['rps'] / med['stunnel']['rps']:.2f}×",
                         f"{m['relay_us'] / med['stunnel']['relay_us']:.2f}×"))
    print()
    print(f"GET VAR, persistent connections, medians of {repeat} interleaved {seconds:g} s runs:")
    print(table(rows))
    print()


def measure(chain: Chain, run: Callable[[], Dict[str, float]]) -> Dict[str, float]:
    """
    Run a load, adding the CPU seconds each shim used meanwhile.
    """
    pids = {"server_cpu": chain.server.proc.pid, "open_cpu": chain.open_server.proc.pid,
            "client_cpu_s": chain.client.proc.pid, "upsd_cpu": chain.upsd.proc.pid}
    before = {k: cpu_seconds(p) for k, p in pids.items()}
    result = run()
    for key, pid in pids.items():
        result[key] = cpu_seconds(pid) - before[key]
    return result


def table(rows: List[Tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")
        if n == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default="/tmp/inst-shim/bin/python",
                        help="the Python whose nutshim to run (twistd next to it)")
    parser.add_argument("--nut-bin", default="/lib/nut")
    parser.add_argument("--conns", default="1,100,1000")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per run")
    parser.add_argument("--quick", action="store_true", help="2 s runs")
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the sandbox directory")
    parser.add_argument("--stunnel", default=shutil.which("stunnel4") or shutil.which("stunnel") or "",
                        help="the stunnel binary of the anchor (apt-get install stunnel4)")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds of the comparison")
    parser.add_argument("--compare-only", action="store_true",
                        help="only the nutshim-versus-stunnel comparison")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds = 2.0
    if not 0 < args.seconds <= 60:
        parser.error("--seconds: 1 to 60")
    pin = not args.no_pin and (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
    counts = [int(n) for n in args.conns.split(",")]
    build_loadgen()
    nutload = build_client()
    root = tempfile.mkdtemp(prefix="nutshim-shim-bench-")
    os.chmod(root, 0o755)
    chain: Optional[Chain] = None
    try:
        chain = Chain(root, os.path.abspath(args.python), args.nut_bin, pin)
        load = os.getloadavg()[0]
        print(f"sandbox {root}; {os.cpu_count()} CPUs, load average {load:.2f} before the runs; "
              f"{'upsd + server shim on CPU 0, client shim + load generator on CPU 1' if pin else 'not pinned'}; "
              f"{args.seconds:g} s per run")
        if args.stunnel:
            compare(chain, Stunnel(chain, args.stunnel, pin), counts, args.seconds, max(1, args.repeat), pin)
        else:
            print("(no stunnel comparison: apt-get install stunnel4, or --stunnel PATH)")
        if args.compare_only:
            return 0
        results: Dict[Tuple[str, int], Dict[str, float]] = {}
        for count in counts:
            # Through the shims every new connection is a TLS handshake
            # (a few ms of CPU each): 1000 at once take seconds to get going.
            warm = ["-w", f"{min(30.0, 1 + count / 100):g}"]
            timeout = args.seconds + 120
            for mode in ("steady", "connect"):
                for target, port in (("direct", chain.upsd_port), ("shims", chain.client_port)):
                    lg = ["-m", mode, "-c", str(count), "-d", f"{args.seconds:g}", *warm]
                    results[(f"{mode}-{target}", count)] = measure(
                        chain, lambda: loadgen(port, lg, pin, timeout))
                    r = results[(f"{mode}-{target}", count)]
                    print(f"  {mode:7} {target:6} {count:5} clients: {r['rps']:9.0f}/s  p99 {fmt_us(r['p99_us'])}"
                          f"  errors {r.get('errors', 0):.0f}  bad replies {r.get('bad', 0):.0f}", flush=True)
            if nutload:
                # nutload has no warm-up: run long enough for the first
                # round of concurrent handshakes not to dominate.
                r = measure(chain, lambda: run_c(
                    nutload, "handshake", chain.open_port, count, max(args.seconds, 10.0), chain.cafile,
                    {CLIENT_CPU} if pin else None))
                r["total"] = r["rate"] * max(args.seconds, 10.0)
                results[("handshake", count)] = r
                print(f"  handshake server shim {count:5} clients: {r['rate']:9.0f}/s  p99 {r['p99_ms']:.1f} ms"
                      f"  errors {r['errors']:.0f}", flush=True)
        rss = {"server shim": rss_kib(chain.server.proc.pid), "client shim": rss_kib(chain.client.proc.pid)}

        rows: List[Tuple[str, ...]] = [("measure", *[f"{c} clients" for c in counts])]

        def row(name: str, key: str, field: str, fmt: Callable[[float], str]) -> None:
            cells = []
            for c in counts:
                r = results.get((key, c))
                cells.append(fmt(r[field]) if r is not None and field in r else "-")
            rows.append((name, *cells))

        rate = lambda v: f"{v:,.0f}/s"  # noqa: E731
        row("GET VAR, direct to upsd: requests", "steady-direct", "rps", rate)
        row("GET VAR, through both shims: requests", "steady-shims", "rps", rate)
        row("GET VAR, direct: p99 latency", "steady-direct", "p99_us", fmt_us)
        row("GET VAR, through both shims: p99 latency", "steady-shims", "p99_us", fmt_us)
        row("connect+GET+close, direct: cycles", "connect-direct", "rps", rate)
        row("connect+GET+close, through shims (1 TLS handshake each): cycles", "connect-shims", "rps", rate)
        row("connect+GET+close, through shims: p99 latency", "connect-shims", "p99_us", fmt_us)
        row("server shim alone: TLS handshakes", "handshake", "rate", rate)
        row("server shim alone: handshake p99", "handshake", "p99_ms", lambda v: f"{v:.1f} ms")
        for key, label in (("steady-shims", "GET VAR"), ("connect-shims", "connect cycle")):
            for field, who in (("server_cpu", "server shim"), ("client_cpu_s", "client shim")):
                cells = []
                for c in counts:
                    done = results.get((key, c))
                    # The CPU was read around the whole run, warm-up included.
                    n = done.get("total", done["requests"]) if done else 0
                    cells.append(f"{done[field] / n * 1e6:.0f} µs" if done and n else "-")
                rows.append((f"{who} CPU per {label}", *cells))
        print()
        print(table(rows))
        print()
        print("resident memory after the runs: " + ", ".join(f"{k} {v / 1024:.0f} MiB" for k, v in rss.items()))
        if not nutload:
            print("(no handshake rows: bench/nutload.c could not be built; apt-get install gcc libssl-dev)")
    finally:
        if chain is not None:
            chain.stop()
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
