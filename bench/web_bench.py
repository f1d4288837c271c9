#!/usr/bin/env python3
"""
Benchmark nut-upsd's HTTP side (issue 12): what a Prometheus scrape costs
the daemon, and what it costs the NUT clients.

Not a test: never run in CI.  Every loop is bounded and everything
listens on 127.0.0.1.  Results and how to read them: docs/metrics.md
("Cost").

What it measures:

 1. in-process, with 1, 10 and 100 simulated UPSes (nutshim-sim playing
    the lab.dev sample, 33 variables each): the server time of one
    C{/metrics} answer -- unchanged data, three values changed per UPS
    since the previous scrape (what a real UPS does between two 15 s
    scrapes), and the first scrape -- and of the status page's cards and
    the JSON view;
 2. the cost of counting on the hot path: C{MeteredEngine.handle} against
    the plain C{Engine.handle} for one C{GET VAR};
 3. a real C{twistd nut-upsd} with 100 simulated UPSes: C{GET /metrics}
    over HTTP (wall time, and the server's own
    C{nutshim_metrics_render_seconds});
 4. its C{GET VAR} throughput (bench/loadgen.c, 100 persistent
    connections) without and with a scrape every second, interleaved,
    C{--repeat} times; the medians and their ratio (goal: within 5 %).

With two or more CPUs the daemon runs on CPU 0 and the load generator
and the scraper on CPU 1.

Usage::

    python3 bench/web_bench.py [--python .venv/bin/python] [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from typing import Any, Callable, Dict, List, Optional, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, REPO)

import upsd_bench  # noqa: E402  (bench/upsd_bench.py: loadgen and its helpers)

LAB_DEV = os.path.join(REPO, "nutshim", "drivers", "samples", "lab.dev")


def timed(f: Callable[[], object], runs: int, before: Optional[Callable[[int], None]] = None) -> Dict[str, float]:
    """
    Milliseconds per call of C{f}: median and 95th percentile; C{before}
    runs (untimed) before each call.
    """
    samples = []
    for i in range(runs):
        if before is not None:
            before(i)
        start = time.perf_counter()
        f()
        samples.append((time.perf_counter() - start) * 1e3)
    samples.sort()
    return {"median_ms": statistics.median(samples),
            "p95_ms": samples[min(len(samples) - 1, int(len(samples) * 0.95))]}


def in_process(counts: Sequence[int], runs: int) -> Dict[str, Any]:
    from twisted.internet.task import Clock

    from nutshim.config.cmdvartab import load_cmdvartab
    from nutshim.drivers.sim import SimulatedUPS
    from nutshim.upsd.registry import Registry, UpsEntry
    from nutshim.web.counters import DaemonCounters
    from nutshim.web.history import History
    from nutshim.web.process import ProcessMetrics
    from nutshim.web.resources import WebContext

    descriptions: Any = None
    for path in ("/usr/share/nut/cmdvartab", "/etc/nut/cmdvartab"):
        if os.path.exists(path):
            descriptions = load_cmdvartab(path)
            break
    if descriptions is None:
        class _None:
            def describe_var(self, name: str) -> None:
                return None
        descriptions = _None()

    out: Dict[str, Any] = {}
    for n in counts:
        clock = Clock()
        clock.advance(time.time())
        registry = Registry()
        for i in range(n):
            driver = SimulatedUPS(f"ups{i}", LAB_DEV, clock)
            driver.start()
            registry.add(UpsEntry(f"ups{i}", f"UPS {i}", driver, "nutshim-sim", "lab.dev"))
        history = History(registry, clock)
        history.start()
        for _ in range(720):  # six hours of samples: full rings
            clock.advance(30)
        ctx = WebContext(registry, lambda: descriptions, DaemonCounters(), clock.seconds, history,
                         process=ProcessMetrics())

        def change(k: int) -> None:
            for e in registry:
                st = e.driver.state
                st.set_info("input.voltage", str(225 + k % 9))
                st.set_info("ups.load", str(30 + k % 7))
                st.set_info("battery.voltage", f"27.{k % 10}")

        first = timed(lambda: ctx.exposition.render(), 1)
        ctx.exposition.render()
        row = {
            "metrics_first": first,
            "metrics_unchanged": timed(ctx.exposition.render, runs),
            "metrics_3_changed_per_ups": timed(ctx.exposition.render, runs, change),
            "metrics_bytes": len(ctx.exposition.render()),
            "cards_changed": timed(lambda: ctx.cards.render(clock.seconds()), max(5, runs // 4), change),
            "json_changed": timed(lambda: ctx.json.all(clock.seconds()), max(5, runs // 4), change),
        }
        out[str(n)] = row
        for e in registry:
            e.driver.stop()
    return out


def counting_cost(runs: int = 20000, rounds: int = 30) -> Dict[str, float]:
    from twisted.internet.task import Clock

    from nutshim.config.users import parse_users
    from nutshim.protocol import commands as c
    from nutshim.testing import MemoryDriver
    from nutshim.upsd.engine import Engine
    from nutshim.upsd.registry import Registry, Session, UpsEntry
    from nutshim.upsd.tracking import TrackingTable
    from nutshim.web.counters import DaemonCounters, MeteredEngine

    registry = Registry()
    driver = MemoryDriver()
    driver.state.set_info("ups.status", "OL")
    registry.add(UpsEntry("ups", None, driver, "memory", "x"))
    users = parse_users(b"", "upsd.users")
    tracking = TrackingTable(Clock().seconds, 3600.0)
    plain = Engine(registry, users, tracking)
    metered = MeteredEngine(registry, users, tracking, counters=DaemonCounters())
    session = Session("127.0.0.1")
    request = c.GetVar("ups", "ups.status")
    best = {"plain": float("inf"), "metered": float("inf")}
    # Interleaved, the best of many short rounds: the machine is shared.
    for _ in range(rounds):
        for name, engine in (("plain", plain), ("metered", metered)):
            handle = engine.handle
            start = time.perf_counter()
            for _ in range(runs):
                handle(session, request)
            best[name] = min(best[name], (time.perf_counter() - start) / runs * 1e9)
    result = {f"{name}_ns": value for name, value in best.items()}
    result["added_ns"] = result["metered_ns"] - result["plain_ns"]
    return result


class Daemon:
    def __init__(self, python: str, root: str, n: int, pin: bool, installed: bool = False) -> None:
        self.port, self.http = upsd_bench.free_port(), upsd_bench.free_port()
        with open(os.path.join(root, "ups.conf"), "w") as f:
            for i in range(n):
                f.write(f"[ups{i}]\n\tdriver = nutshim-sim\n\tport = {LAB_DEV}\n")
        with open(os.path.join(root, "upsd.conf"), "w") as f:
            f.write(f"LISTEN 127.0.0.1 {self.port}\nHTTP_LISTEN {self.http}\nMAXCONN 15000\n")
        os.chmod(os.path.join(root, "upsd.conf"), 0o640)
        with open(os.path.join(root, "upsd.users"), "w") as f:
            f.write("[admin]\n\tpassword = pw\n")
        os.chmod(os.path.join(root, "upsd.users"), 0o600)
        env = dict(os.environ, NUT_CONFPATH=root, NUT_STATEPATH=root)
        twistd = os.path.join(os.path.dirname(os.path.abspath(python)), "twistd")
        if not installed:
            env["PYTHONPATH"] = REPO  # this checkout, not what the venv has installed
        self.server = upsd_bench.Server(
            "nutshim", [python, twistd, "-n", "--pidfile=", "--logfile", os.path.join(root, "nutshim.log"),
                        "nut-upsd", "--confdir", root], self.port, env, os.path.join(root, "nutshim.out"), pin)
        upsd_bench.wait_for("nut-upsd", lambda: b"VAR" in upsd_bench.ask(self.port, b"GET VAR ups0 ups.status\n"))
        upsd_bench.wait_for("HTTP", lambda: self.scrape() is not None)

    def scrape(self) -> Optional[bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http}/metrics", timeout=5) as r:
                return r.read()  # type: ignore[no-any-return]
        except OSError:
            return None

    def render_seconds(self) -> float:
        body = self.scrape() or b""
        for line in body.decode().splitlines():
            if line.startswith("nutshim_metrics_render_seconds "):
                return float(line.split()[1])
        return float("nan")


def real_daemon(python: str, n: int, seconds: float, repeat: int, pin: bool,
                installed: bool = False) -> Dict[str, Any]:
    upsd_bench.build_loadgen()
    root = tempfile.mkdtemp(prefix="nutshim-webbench-")
    daemon = Daemon(python, root, n, pin, installed)
    try:
        wall, server = [], []
        for _ in range(20):
            start = time.perf_counter()
            daemon.scrape()
            wall.append((time.perf_counter() - start) * 1e3)
            server.append(daemon.render_seconds() * 1e3)
            time.sleep(0.05)
        pid = daemon.server.proc.pid
        before = upsd_bench.cpu_seconds(pid)
        for _ in range(50):
            daemon.scrape()
        per_scrape = (upsd_bench.cpu_seconds(pid) - before) / 50
        result: Dict[str, Any] = {
            "scrape_wall_ms_median": statistics.median(wall),
            "scrape_server_ms_median": statistics.median(server),
            # Everything a scrape costs the daemon (HTTP included), from
            # /proc: the daemon is one thread, so at saturation a scrape
            # every second takes this fraction of its GET VAR capacity.
            "scrape_cpu_ms": per_scrape * 1e3,
            "expected_loss_at_1_per_s": per_scrape,
        }
        runs: Dict[str, List[float]] = {"without": [], "with": []}
        for _ in range(repeat):
            for mode in ("without", "with"):
                stop = threading.Event()
                scrapes: List[float] = []

                def scraper() -> None:
                    while not stop.wait(1.0):
                        begin = time.perf_counter()
                        daemon.scrape()
                        scrapes.append(time.perf_counter() - begin)

                thread = threading.Thread(target=scraper, daemon=True)
                if mode == "with":
                    thread.start()
                got = upsd_bench.loadgen(daemon.port, ["-m", "steady", "-c", "100", "-d", str(seconds),
                                                       "-u", "ups0", "-v", "ups.status"], pin,
                                         seconds + 60, server_pid=daemon.server.proc.pid)
                stop.set()
                if mode == "with":
                    thread.join(10)
                    got["scrapes"] = float(len(scrapes))
                runs[mode].append(got["rps"])
        result["get_var_rps_without"] = statistics.median(runs["without"])
        result["get_var_rps_with_scrape_every_s"] = statistics.median(runs["with"])
        result["ratio"] = result["get_var_rps_with_scrape_every_s"] / result["get_var_rps_without"]
        result["runs"] = runs
        return result
    finally:
        daemon.server.stop()
        shutil.rmtree(root, ignore_errors=True)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=sys.executable, help="the Python whose twistd runs nut-upsd")
    parser.add_argument("--counts", default="1,10,100", help="UPS counts for the in-process scrape")
    parser.add_argument("--runs", type=int, default=200, help="scrapes per in-process measurement")
    parser.add_argument("--ups", type=int, default=100, help="UPSes of the real daemon")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per GET VAR run")
    parser.add_argument("--repeat", type=int, default=3, help="GET VAR runs per setting (median shown)")
    parser.add_argument("--quick", action="store_true", help="50 scrapes, 3 s runs, once")
    parser.add_argument("--no-daemon", action="store_true", help="only the in-process measurements")
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--installed", action="store_true",
                        help="run the nutshim installed next to --python, not this checkout")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.seconds, args.repeat = 50, 3.0, 1
    if not 1 <= args.repeat <= 10 or not 0 < args.seconds <= 60 or not 1 <= args.runs <= 10000:
        parser.error("bounded runs only: --repeat 1..10, --seconds <= 60, --runs <= 10000")
    pin = not args.no_pin and (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
    results: Dict[str, Any] = {}

    counts = [int(n) for n in args.counts.split(",")]
    results["in_process"] = inproc = in_process(counts, args.runs)
    print("In-process server time per answer (median / p95):")
    print(f"{'UPSes':>6}  {'/metrics unchanged':>20}  {'/metrics 3 changed':>20}  {'first':>8}"
          f"  {'bytes':>8}  {'cards':>16}  {'JSON':>16}")
    for n, row in inproc.items():
        def mp(key: str) -> str:
            return f"{row[key]['median_ms']:.2f} / {row[key]['p95_ms']:.2f} ms"
        print(f"{n:>6}  {mp('metrics_unchanged'):>20}  {mp('metrics_3_changed_per_ups'):>20}"
              f"  {row['metrics_first']['median_ms']:6.1f}ms  {row['metrics_bytes']:>8}"
              f"  {mp('cards_changed'):>16}  {mp('json_changed'):>16}")
    results["counting"] = cost = counting_cost()
    print(f"\nCounting on the hot path: Engine.handle(GET VAR) {cost['plain_ns']:.0f} ns,"
          f" MeteredEngine.handle {cost['metered_ns']:.0f} ns: +{cost['added_ns']:.0f} ns per request")

    if not args.no_daemon:
        results["daemon"] = real = real_daemon(args.python, args.ups, args.seconds, args.repeat, pin,
                                                     args.installed)
        print(f"\nReal nut-upsd, {args.ups} simulated UPSes:")
        print(f"  GET /metrics: {real['scrape_wall_ms_median']:.1f} ms wall,"
              f" {real['scrape_server_ms_median']:.2f} ms server time (median of 20)")
        print(f"  daemon CPU per scrape (HTTP included): {real['scrape_cpu_ms']:.2f} ms, so a scrape every"
              f" second takes {real['expected_loss_at_1_per_s'] * 100:.2f} % of the daemon's capacity")
        print(f"  GET VAR, 100 connections: {real['get_var_rps_without']:.0f} req/s without scrapes,"
              f" {real['get_var_rps_with_scrape_every_s']:.0f} req/s with one every second"
              f" (ratio {real['ratio']:.3f}; runs {real['runs']})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
