#!/usr/bin/env python3
"""
Benchmark nutshim's upsd against NUT 2.8.0's C upsd, on loopback.

Not a test: never run in CI.  Every loop is bounded (the load generator
refuses runs over 10 minutes, this script more than 10 repeats or 60 s
runs), and everything listens on 127.0.0.1 only.  Results and how to read
them: docs/benchmarks.md.

What it does:

 1. builds bench/loadgen.c with C{gcc -O2} into bench/out/;
 2. makes a private directory with one C{dummy-ups} UPS (nutshim's lab.dev
    sample, 31 variables) and an upsd.conf with C{MAXCONN 15000};
 3. starts NUT's C upsd, nutshim's C{twistd nut-upsd} (the installed one
    next to C{--python}, or C{--source}) on the same driver socket, and a
    bare Twisted server answering canned replies (the framework's ceiling),
    with the open-files limit raised to 65536 or the hard limit;
 4. runs the load generator: GET VAR in a closed loop on persistent
    connections, and connect + GET + close, at 1, 100, 500 and 1000
    connections, each setting on every server in turn, C{--repeat} times
    (the median is shown, with the range), noting the server's CPU time per
    request; LIST VAR latency from one ordinary blocking client; 10,000
    connections each polled every 5 s;
 5. reads the servers' resident memory (VmRSS) idle and with 10,000
    connections, and prints a side-by-side table (and JSON with C{--json}).

With two or more CPUs the servers (and the driver) run on CPU 0 and the load
generator on CPU 1 (C{taskset}), so that neither steals the other's core;
C{--no-pin} turns this off.  All servers are single-threaded.

Usage (as root, so that NUT's programs may stay root and the limits rise)::

    python3 bench/upsd_bench.py [--python /tmp/inst/bin/python] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
OUT = os.path.join(HERE, "out")
LOADGEN_SRC = os.path.join(HERE, "loadgen.c")
LOADGEN = os.path.join(OUT, "loadgen")
LAB_DEV = os.path.join(REPO, "nutshim", "drivers", "samples", "lab.dev")

NOFILE = 65536
SERVER_CPU = 0
LOADGEN_CPU = 1


def build_loadgen() -> None:
    os.makedirs(OUT, exist_ok=True)
    if os.path.exists(LOADGEN) and os.path.getmtime(LOADGEN) >= os.path.getmtime(LOADGEN_SRC):
        return
    subprocess.run(["gcc", "-O2", "-Wall", "-o", LOADGEN, LOADGEN_SRC], check=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ask(port: int, data: bytes, timeout: float = 2.0) -> bytes:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(data)
            out = b""
            while not out.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
            return out
    except OSError:
        return b""


def wait_for(what: str, check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.1)


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Server:
    """
    One daemon under test.
    """

    def __init__(self, name: str, args: List[str], port: int, env: Dict[str, str], log: str, pin: bool) -> None:
        self.name = name
        self.port = port
        self.log = log

        def prepare() -> None:
            # As high as allowed (a container may cap the hard limit).
            hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            want = NOFILE if hard == resource.RLIM_INFINITY else min(NOFILE, hard)
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))
            except (ValueError, OSError):
                resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            if pin:
                os.sched_setaffinity(0, {SERVER_CPU})

        out = open(log, "ab")
        self.proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     preexec_fn=prepare, start_new_session=True)
        out.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def parse_result(text: str) -> Dict[str, float]:
    for line in text.splitlines():
        if line.startswith("RESULT "):
            out: Dict[str, float] = {}
            for pair in line.split()[1:]:
                key, _, value = pair.partition("=")
                try:
                    out[key] = float(value)
                except ValueError:
                    pass
            return out
    raise SystemExit("loadgen gave no RESULT line:\n" + text)


def cpu_seconds(pid: int) -> float:
    """
    User + system CPU time of a process so far.
    """
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def loadgen(port: int, args: Sequence[str], pin: bool, timeout: float,
            watch: Optional[Callable[[], None]] = None, server_pid: Optional[int] = None) -> Dict[str, float]:
    cmd = [LOADGEN, "-p", str(port), "-u", "ups", *args]
    if pin:
        cmd = ["taskset", "-c", str(LOADGEN_CPU), *cmd]
    cpu_before = cpu_seconds(server_pid) if server_pid else 0.0
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"loadgen {' '.join(args)} took longer than {timeout} s")
        if watch is not None:
            watch()
        time.sleep(0.25)
    out = proc.stdout.read() if proc.stdout else ""
    result = parse_result(out)
    if server_pid and result.get("total"):
        # The server's CPU time per request answered: unlike the rate, it
        # hardly depends on what else the machine is doing.
        result["cpu_us"] = (cpu_seconds(server_pid) - cpu_before) / result["total"] * 1e6
    return result


def sandbox(root: str, c_port: int) -> None:
    shutil.copy(LAB_DEV, os.path.join(root, "ups.dev"))
    with open(os.path.join(root, "ups.conf"), "w") as f:
        f.write('[ups]\n\tdriver = dummy-ups\n\tport = ups.dev\n\tdesc = "benchmark UPS"\n')
    with open(os.path.join(root, "upsd.conf"), "w") as f:
        f.write(f"LISTEN 127.0.0.1 {c_port}\nMAXCONN 15000\nMAXAGE 15\n")
    os.chmod(os.path.join(root, "upsd.conf"), 0o640)
    with open(os.path.join(root, "upsd.users"), "w") as f:
        f.write("[admin]\n\tpassword = pw\n\tactions = SET\n")
    os.chmod(os.path.join(root, "upsd.users"), 0o600)


def fmt_us(us: float) -> str:
    if us >= 1000:
        return f"{us / 1000:.1f} ms"
    return f"{us:.0f} µs"


#: The framework's ceiling: a Twisted server that answers every read with a
#: canned GET VAR reply, straight to the socket (what nutshim's hot path
#: does, minus nutshim).  Not a upsd: only for steady/connect runs.
#: The bare Twisted floor: answers every request line with a canned GET VAR
#: reply written straight to the socket.  argv: port [processes]; with more
#: than one process they share the listening socket, each with its own
#: reactor made after the fork (bench/floor_processes.py).
FLOOR_SERVER = """
import os, socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(1024)
s.setblocking(False)
for _ in range(int(sys.argv[2]) - 1 if len(sys.argv) > 2 else 0):
    if os.fork() == 0:
        break
from twisted.internet import epollreactor
epollreactor.install()
from twisted.internet import protocol, reactor
REPLY = b'VAR ups ups.status "OL"\\n'
class Floor(protocol.Protocol):
    def connectionMade(self):
        self.transport.setTcpNoDelay(True)
    def dataReceived(self, data):
        self.transport.socket.send(REPLY * data.count(b"\\n"))
reactor.adoptStreamPort(s.fileno(), socket.AF_INET, protocol.Factory.forProtocol(Floor))
s.close()
reactor.run()
"""

NAMES = {"nut": "NUT 2.8.0 upsd", "nutshim": "nutshim upsd", "floor": "Twisted floor"}


def median_run(runs: List[Dict[str, float]]) -> Dict[str, float]:
    """
    The run with the median rate, with the range of rates and the median
    CPU time per request added.
    """
    ordered = sorted(runs, key=lambda r: r["rps"])
    chosen = dict(ordered[len(ordered) // 2])
    chosen["rps_min"] = ordered[0]["rps"]
    chosen["rps_max"] = ordered[-1]["rps"]
    chosen["runs"] = float(len(runs))
    cpu = sorted(r["cpu_us"] for r in runs if "cpu_us" in r)
    if cpu:
        chosen["cpu_us"] = cpu[len(cpu) // 2]
    return chosen


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default="/tmp/inst/bin/python",
                        help="the Python whose nutshim to run (twistd next to it)")
    parser.add_argument("--nut-bin", default="/lib/nut", help="where NUT's upsd and dummy-ups are")
    parser.add_argument("--source", help="run nutshim from this source tree (e.g. an older commit's, from"
                                         " git archive) instead of what --python has installed")
    parser.add_argument("--conns", default="1,100,500,1000", help="connection counts for steady/connect")
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds per steady/connect/list run")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs per steady/connect setting, servers interleaved; the median is shown")
    parser.add_argument("--idle-conns", type=int, default=10000)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--idle-interval", type=int, default=5000, help="ms between polls of one connection")
    parser.add_argument("--modes", default="steady,connect,list,idle")
    parser.add_argument("--servers", default="nut,nutshim,floor",
                        help="nut, nutshim and/or floor (a trivial Twisted server: the framework's ceiling)")
    parser.add_argument("--quick", action="store_true",
                        help="defaults of 2 s runs, once, and 2000 idle connections for 10 s")
    parser.add_argument("--no-pin", action="store_true", help="do not pin servers and load generator to CPUs")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the sandbox directory")
    if "--quick" in (sys.argv[1:] if argv is None else argv):
        # Shorter defaults; explicit options still win.
        parser.set_defaults(seconds=2.0, repeat=1, idle_conns=2000, idle_seconds=10.0)
    args = parser.parse_args(argv)
    if not 1 <= args.repeat <= 10 or not 0 < args.seconds <= 60 or not 0 < args.idle_seconds <= 300:
        parser.error("bounded runs only: --repeat 1..10, --seconds <= 60, --idle-seconds <= 300")
    pin = not args.no_pin and (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
    modes = args.modes.split(",")
    counts = [int(n) for n in args.conns.split(",")]
    wanted = args.servers.split(",")

    build_loadgen()
    root = tempfile.mkdtemp(prefix="nutshim-bench-")
    os.chmod(root, 0o755)
    c_port, n_port, f_port = free_port(), free_port(), free_port()
    sandbox(root, c_port)
    env = dict(os.environ, NUT_CONFPATH=root, NUT_STATEPATH=root, NUT_ALTPIDPATH=root)
    python = os.path.abspath(args.python)
    twistd = os.path.join(os.path.dirname(python), "twistd")
    if args.source:
        env["PYTHONPATH"] = os.path.abspath(args.source)
    elif not os.path.exists(os.path.join(os.path.dirname(python), "nutshim-driver")):
        # A development venv: use the checkout.
        env["PYTHONPATH"] = REPO
    as_root = ["-u", "root"] if os.geteuid() == 0 else []
    procs: List[Server] = []
    results: Dict[str, Dict[str, object]] = {}
    try:
        driver = Server("dummy-ups", [os.path.join(args.nut_bin, "dummy-ups"), *as_root, "-F", "-a", "ups"],
                        0, env, os.path.join(root, "dummy-ups.log"), pin)
        procs.append(driver)
        wait_for("the driver socket", lambda: os.path.exists(os.path.join(root, "dummy-ups-ups")))
        servers: Dict[str, Server] = {}
        if "nut" in wanted:
            servers["nut"] = Server(NAMES["nut"], [os.path.join(args.nut_bin, "upsd"), *as_root, "-F"],
                                    c_port, env, os.path.join(root, "upsd.log"), pin)
        if "nutshim" in wanted:
            # The backlog nutshim uses for LISTEN lines (1024); --listen
            # replaces LISTEN so that both can read one upsd.conf.
            servers["nutshim"] = Server(
                NAMES["nutshim"],
                [python, twistd, "-n", "--pidfile=", "--logfile", os.path.join(root, "nutshim.log"), "nut-upsd",
                 "--confdir", root, "--statepath", root,
                 "--listen", f"tcp:{n_port}:interface=127.0.0.1:backlog=1024"],
                n_port, env, os.path.join(root, "nutshim.out"), pin)
        if "floor" in wanted:
            servers["floor"] = Server(NAMES["floor"], [python, "-c", FLOOR_SERVER, str(f_port)], f_port, env,
                                      os.path.join(root, "floor.log"), pin)
        procs.extend(servers.values())
        for server in servers.values():
            port = server.port
            wait_for(f"{server.name} data", lambda: ask(port, b"GET VAR ups ups.status\n").startswith(b"VAR "))
        version = ask(n_port, b"VER\n").decode().strip() if "nutshim" in servers else ""
        print(f"sandbox {root}; pinned: {'servers on CPU 0, loadgen on CPU 1' if pin else 'no'}; "
              f"load average before: {os.getloadavg()[0]:.2f}")
        if version:
            print(f"nutshim: {version} ({python}{', source ' + args.source if args.source else ''})")
        time.sleep(1.0)
        for key, server in servers.items():
            results[key] = {"rss_idle_kib": rss_kib(server.proc.pid)}
            print(f"{server.name}: port {server.port}, idle RSS {results[key]['rss_idle_kib']} KiB")

        # Request rates: every setting on every server in turn, repeated.
        for mode in ("steady", "connect"):
            if mode not in modes:
                continue
            for n in counts:
                runs: Dict[str, List[Dict[str, float]]] = {key: [] for key in servers}
                for _ in range(args.repeat):
                    for key, server in servers.items():
                        runs[key].append(loadgen(server.port, ["-m", mode, "-c", str(n), "-d", str(args.seconds)],
                                                 pin, args.seconds + 90, server_pid=server.proc.pid))
                for key in servers:
                    r = results[key][f"{mode}_{n}"] = median_run(runs[key])
                    print(f"{mode:8} {n:5} conns {NAMES[key]:15}: {r['rps']:9.0f} req/s "
                          f"({r['rps_min']:.0f}-{r['rps_max']:.0f})  p50 {fmt_us(r['p50_us']):>9}  "
                          f"p99 {fmt_us(r['p99_us']):>9}  server CPU {r.get('cpu_us', 0):.1f} µs/req  "
                          f"errors {r['errors']:.0f}  bad {r['bad']:.0f}")
        upsds = {k: v for k, v in servers.items() if k != "floor"}
        if "list" in modes:
            for key, server in upsds.items():
                r = loadgen(server.port, ["-m", "list", "-d", str(args.seconds)], pin, args.seconds + 30)
                results[key]["list"] = r
                print(f"list 1 blocking client {NAMES[key]:15}: {r['rps']:9.1f} LIST/s p50 "
                      f"{fmt_us(r['p50_us']):>9}  p99 {fmt_us(r['p99_us']):>9}  ({r['bytes']:.0f} bytes)")
        if "idle" in modes:
            for key, server in upsds.items():
                peak = [0]

                def watch(server: Server = server) -> None:
                    peak[0] = max(peak[0], rss_kib(server.proc.pid))

                r = loadgen(server.port, ["-m", "idle", "-c", str(args.idle_conns), "-d", str(args.idle_seconds),
                                          "-i", str(args.idle_interval)], pin, args.idle_seconds + 200, watch)
                results[key]["idle"] = r
                results[key]["rss_idle_conns_kib"] = peak[0]
                print(f"idle {NAMES[key]}: {r['open']:.0f} of {args.idle_conns} open in {r['open_s']:.1f} s; "
                      f"warm-up {r['warm_s']:.1f} s (p99 {fmt_us(r['warm_p99_us'])}, max {fmt_us(r['warm_max_us'])});"
                      f" then polled every {args.idle_interval} ms for {args.idle_seconds:g} s: "
                      f"p50 {fmt_us(r['p50_us'])}  p99 {fmt_us(r['p99_us'])}  max {fmt_us(r['max_us'])}  "
                      f"errors {r['errors']:.0f}  eofs {r['eofs']:.0f}  late sends {r['late']:.0f}  "
                      f"RSS {peak[0]} KiB")
                # Let the server see the closes before the next run.
                time.sleep(3.0)
        for server in servers.values():
            if server.proc.poll() is not None:
                print(f"!! {server.name} exited with {server.proc.returncode}; see {server.log}")
        print(f"load average after: {os.getloadavg()[0]:.2f}")
        print_table(results, counts, modes, args)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"pinned": pin, "nutshim": version, "args": vars(args), "results": results}, f, indent=2)
    finally:
        for proc in reversed(procs):
            proc.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


def print_table(results: Dict[str, Dict[str, object]], counts: Sequence[int], modes: Sequence[str],
                args: argparse.Namespace) -> None:
    """
    Side by side, as a Markdown table; the ratio is nutshim / NUT.
    """
    keys: List[str] = [k for k in ("nut", "nutshim", "floor") if k in results]
    if not keys:
        return
    rows: List[List[str]] = [["measure", *[NAMES[k] for k in keys]]]
    ratio = "nut" in results and "nutshim" in results
    if ratio:
        rows[0].append("nutshim / NUT")

    def run(k: str, key: str) -> Optional[Dict[str, float]]:
        r = results.get(k, {}).get(key)
        return r if isinstance(r, dict) else None

    def add(label: str, cells: Dict[str, str], quotient: Optional[float] = None) -> None:
        row = [label] + [cells.get(k, "-") for k in keys]
        if ratio:
            row.append(f"{quotient:.2f}" if quotient is not None else "")
        rows.append(row)

    def rate_row(label: str, key: str) -> None:
        cells: Dict[str, str] = {}
        for k in keys:
            r = run(k, key)
            if r is not None:
                spread = f" ({r['rps_min']:,.0f}–{r['rps_max']:,.0f})" if r.get("runs", 1) > 1 else ""
                cells[k] = f"{r['rps']:,.0f}{spread}"
        a, b = run("nut", key), run("nutshim", key)
        add(label, cells, b["rps"] / a["rps"] if a and b and a["rps"] else None)

    def latency_row(label: str, key: str, fields: Sequence[str]) -> None:
        cells: Dict[str, str] = {}
        for k in keys:
            r = run(k, key)
            if r is not None:
                cells[k] = " / ".join(fmt_us(r[f]) for f in fields)
        add(label, cells)

    for mode in ("steady", "connect"):
        if mode not in modes:
            continue
        label = "GET VAR, persistent" if mode == "steady" else "connect+GET+close"
        for n in counts:
            rate_row(f"{label}, {n} conns: req/s", f"{mode}_{n}")
            latency_row(f"{label}, {n} conns: p50 / p99", f"{mode}_{n}", ("p50_us", "p99_us"))
            cpu = {k: f"{r['cpu_us']:.1f} µs" for k in keys
                   if (r := run(k, f"{mode}_{n}")) is not None and "cpu_us" in r}
            a, b = run("nut", f"{mode}_{n}"), run("nutshim", f"{mode}_{n}")
            add(f"{label}, {n} conns: server CPU per request", cpu,
                b["cpu_us"] / a["cpu_us"] if a and b and a.get("cpu_us") and "cpu_us" in b else None)
    if "list" in modes:
        latency_row("LIST VAR, blocking client: p50 / p99", "list", ("p50_us", "p99_us"))
    if "idle" in modes:
        n = args.idle_conns
        opened = {k: f"{run(k, 'idle')['open_s']:.1f} s" for k in keys if run(k, "idle")}  # type: ignore[index]
        add(f"{n} conns: time to open", opened)
        latency_row(f"{n} conns: first poll of each, p99 / max", "idle", ("warm_p99_us", "warm_max_us"))
        latency_row(f"{n} conns polled every {args.idle_interval / 1000:g} s: p50 / p99 / max", "idle",
                    ("p50_us", "p99_us", "max_us"))
        cells: Dict[str, str] = {}
        for k in keys:
            r = run(k, "idle")
            if r is not None:
                cells[k] = f"{r['errors'] + r['eofs']:.0f}"
        add(f"{n} conns: errors + EOFs", cells)

    def rss(key: str) -> Dict[str, str]:
        return {k: f"{float(results[k][key]) / 1024:.1f} MiB" for k in keys if key in results[k]}  # type: ignore[arg-type]

    add("RSS idle", rss("rss_idle_kib"))
    if "idle" in modes:
        add(f"RSS with {args.idle_conns} conns", rss("rss_idle_conns_kib"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print()
    for i, row in enumerate(rows):
        print("| " + " | ".join(cell.ljust(widths[j]) for j, cell in enumerate(row)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


if __name__ == "__main__":
    sys.exit(main())
