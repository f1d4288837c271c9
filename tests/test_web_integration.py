"""
nut-upsd's HTTP side against real outside tools: Debian's Prometheus
server scraping it (and its promtool checking the format), and Debian's
headless Chromium showing the status page while a UPS goes on battery.

In CI (C{CI=true}) a missing prometheus, promtool or chromium is a
failure, never a skip: scripts/run-tests.sh installs them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, List, Optional

from twisted.trial.unittest import SynchronousTestCase

from nutshim.testing import skip_or_fail
from tests.cdp import Browser, find_chromium
from tests.harness import Process, free_port, nut_env, query, twistd, wait_for, wait_port, write

USERS = "[admin]\n  password = pw\n  upsmon primary\n"

LAB = """\
battery.charge: {charge}
battery.runtime: {runtime}
battery.voltage: 27.3
device.serial: NSLAB0000001
device.type: ups
input.voltage: {vin}
output.voltage: 230.0
ups.load: 35
ups.mfr: nutshim
ups.model: Lab UPS 1500
ups.beeper.status: enabled
ups.status: {status}
"""


def artifacts() -> str:
    """
    Where screenshots are kept: C{$NUTSHIM_ARTIFACTS}, else C{artifacts}
    in trial's directory.
    """
    path = os.environ.get("NUTSHIM_ARTIFACTS") or os.path.abspath("artifacts")
    os.makedirs(path, exist_ok=True)
    return path


def get(url: str, timeout: float = 10.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()  # type: ignore[no-any-return]


class Site:
    """
    A nut-upsd with two simulated UPSes, its NUT port and its HTTP port.
    """

    def __init__(self, testcase: SynchronousTestCase, via_option: bool = False) -> None:
        self.confdir = confdir = os.path.abspath(testcase.mktemp())
        os.makedirs(confdir)
        self.port, self.http = free_port(), free_port()
        self.lab = os.path.join(confdir, "lab.dev")
        self.set_lab("OL CHRG", charge=96, runtime=2400, vin=231.0)
        write(os.path.join(confdir, "rack.dev"),
              LAB.format(charge=100, runtime=5400, vin=229.5, status="OL"))
        write(os.path.join(confdir, "ups.conf"), textwrap.dedent("""\
            [lab]
                driver = nutshim-sim
                port = lab.dev
                pollinterval = 0.5
                desc = "Lab UPS"
            [rack]
                driver = nutshim-sim
                port = rack.dev
                desc = "Rack 2"
            """))
        upsd_conf = f"LISTEN 127.0.0.1 {self.port}\n"
        args = [twistd(), "-n", "--pidfile=", "nut-upsd", "--confdir", confdir]
        if via_option:
            args += ["--http", f"tcp:{self.http}:interface=127.0.0.1"]
        else:
            upsd_conf += f"HTTP_LISTEN {self.http}\n"
        write(os.path.join(confdir, "upsd.conf"), upsd_conf, 0o640)
        write(os.path.join(confdir, "upsd.users"), USERS, 0o640)
        self.proc = Process(args, os.path.join(confdir, "nutshim.log"), env=nut_env(confdir))
        testcase.addCleanup(self.proc.stop)
        try:
            wait_port(self.http)
        except AssertionError:
            raise AssertionError("nut-upsd did not start:\n" + self.proc.output())
        wait_for(lambda: b"OL" in query(self.port, b"GET VAR lab ups.status\n"), 10, "lab's data")
        self.url = f"http://127.0.0.1:{self.http}/"

    def set_lab(self, status: str, charge: int, runtime: int, vin: float) -> None:
        """
        Rewrite lab.dev; nutshim-sim plays it again when its time changes.
        """
        write(self.lab, LAB.format(charge=charge, runtime=runtime, vin=vin, status=status))
        stamp = time.time() + getattr(self, "_bump", 0)
        self._bump = getattr(self, "_bump", 0) + 2
        os.utime(self.lab, (stamp, stamp))

    def var(self, ups: str, name: str) -> str:
        reply = query(self.port, f"GET VAR {ups} {name}\n".encode()).decode()
        return reply.split('"')[1]


class Prometheus:
    """
    Debian's Prometheus on a private port and storage directory.
    """

    def __init__(self, testcase: SynchronousTestCase, binary: str, scrape_configs: str) -> None:
        work = os.path.abspath(testcase.mktemp())
        os.makedirs(work)
        self.port = free_port()
        config = os.path.join(work, "prometheus.yml")
        write(config, "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                      "  evaluation_interval: 1s\nscrape_configs:\n" + scrape_configs)
        self.proc = Process([binary, f"--config.file={config}",
                             f"--storage.tsdb.path={os.path.join(work, 'data')}",
                             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                            os.path.join(work, "prometheus.log"))
        testcase.addCleanup(self.proc.stop)
        try:
            wait_port(self.port, 60)
            wait_for(self._ready, 60, "Prometheus ready")
        except AssertionError:
            raise AssertionError("prometheus did not start:\n" + self.proc.output())

    def _ready(self) -> bool:
        try:
            return get(f"http://127.0.0.1:{self.port}/-/ready", 2).startswith(b"Prometheus")
        except OSError:
            return False

    def query(self, expression: str) -> List[Dict[str, Any]]:
        url = (f"http://127.0.0.1:{self.port}/api/v1/query?"
               + urllib.parse.urlencode({"query": expression}))
        body = json.loads(get(url))
        assert body["status"] == "success", body
        return body["data"]["result"]  # type: ignore[no-any-return]

    def values(self, expression: str, label: str) -> Dict[str, float]:
        return {r["metric"].get(label, ""): float(r["value"][1]) for r in self.query(expression)}

    def wait(self, expression: str, label: str, expected: Dict[str, float],
             timeout: float = 30.0) -> None:
        last: Optional[Dict[str, float]] = None

        def check() -> bool:
            nonlocal last
            last = self.values(expression, label)
            return last == expected

        try:
            wait_for(check, timeout, expression)
        except AssertionError as e:
            raise AssertionError(f"{e}: got {last}, expected {expected}") from None


class PromtoolTests(SynchronousTestCase):
    def test_format(self) -> None:
        """
        Prometheus's own linter accepts /metrics, every line of it.
        """
        promtool = shutil.which("promtool")
        if promtool is None:
            skip_or_fail(self, "promtool missing (apt-get install prometheus)")
        site = Site(self, via_option=True)
        body = get(site.url + "metrics")
        result = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True,
                                timeout=30)
        self.assertEqual((result.returncode, result.stdout, result.stderr), (0, b"", b""))
        self.assertIn(b'network_ups_tools_ups_beeper_status{ups="lab"} 1\n', body)


class PrometheusTests(SynchronousTestCase):
    def test_scrape(self) -> None:
        """
        A real Prometheus scraping nut-upsd every second holds the UPS's
        values under nut_exporter's names, follows it on battery, and the
        nut_exporter-style scrape of /ups_metrics gets the same numbers
        with its ups label from the scrape configuration.
        """
        binary = shutil.which("prometheus")
        if binary is None:
            skip_or_fail(self, "prometheus missing (apt-get install prometheus)")
        site = Site(self)
        target = f"127.0.0.1:{site.http}"
        prom = Prometheus(self, binary, textwrap.dedent(f"""\
            - job_name: nut
              static_configs:
                - targets: ['{target}']
            - job_name: nut_exporter_style
              metrics_path: /ups_metrics
              params:
                ups: [rack]
              static_configs:
                - targets: ['{target}']
                  labels:
                    ups: rack
            """))
        prom.wait('up{job="nut"}', "job", {"nut": 1.0})
        charge = {"lab": float(site.var("lab", "battery.charge")),
                  "rack": float(site.var("rack", "battery.charge"))}
        self.assertEqual(charge, {"lab": 96.0, "rack": 100.0})
        prom.wait('network_ups_tools_battery_charge{job="nut"}', "ups", charge)
        prom.wait('network_ups_tools_ups_status{job="nut",ups="lab"}', "flag",
                  {**{f: 0.0 for f in ("OL", "OB", "LB", "HB", "RB", "CHRG", "DISCHRG", "BYPASS",
                                       "CAL", "OFF", "OVER", "TRIM", "BOOST", "FSD", "SD")},
                   "OL": 1.0, "CHRG": 1.0})
        info = prom.query('network_ups_tools_device_info{job="nut",ups="lab"}')
        self.assertEqual((info[0]["metric"]["model"], info[0]["metric"]["mfr"]),
                         ("Lab UPS 1500", "nutshim"))
        # The exporter-style job: the ups label is the target's, not exported_ups.
        prom.wait('network_ups_tools_battery_charge{job="nut_exporter_style"}', "ups",
                  {"rack": 100.0})
        series = prom.query('network_ups_tools_battery_charge{job="nut_exporter_style"}')
        self.assertNotIn("exported_ups", series[0]["metric"])

        site.set_lab("OB DISCHRG", charge=80, runtime=900, vin=0.0)
        wait_for(lambda: site.var("lab", "ups.status") == "OB DISCHRG", 10, "lab on battery")
        prom.wait('network_ups_tools_ups_status{job="nut",ups="lab",flag=~"OL|OB"}', "flag",
                  {"OL": 0.0, "OB": 1.0})
        prom.wait('network_ups_tools_battery_charge{job="nut",ups="lab"}', "ups", {"lab": 80.0})
        # nutshim's own metrics are there too.
        self.assertEqual(prom.values('nutshim_ups_driver_connected{job="nut"}', "ups"),
                         {"lab": 1.0, "rack": 1.0})
        scrapes = prom.values('nutshim_http_requests_total{job="nut",resource="metrics"}', "job")
        self.assertGreaterEqual(scrapes["nut"], 1)
        # The server's time per scrape, as it reports it: milliseconds.
        render = prom.values('nutshim_metrics_render_seconds{job="nut"}', "job")
        self.assertLess(render["nut"], 0.05)


class BrowserTests(SynchronousTestCase):
    def test_status_page(self) -> None:
        """
        Headless Chromium shows a card per UPS and their charts; when a
        UPS goes on battery its card changes without a reload; on a
        phone-sized screen nothing overflows.  Screenshots are kept.
        """
        binary = find_chromium()
        if binary is None:
            skip_or_fail(self, "chromium missing (apt-get install chromium)")
        site = Site(self)
        browser = Browser(binary, os.path.join(site.confdir, "chromium.log"))
        self.addCleanup(browser.close)
        browser.open(site.url)
        cards = browser.wait("Array.from(document.querySelectorAll('article.card'))"
                             ".map(c => c.dataset.ups).join(',')", what="the cards")
        self.assertEqual(cards, "lab,rack")
        lab = "document.querySelector('article.card[data-ups=\"lab\"]')"
        self.assertEqual(browser.evaluate(f"{lab}.dataset.severity"), "ok")
        self.assertEqual(browser.evaluate(f"{lab}.querySelector('.badge').textContent"),
                         "On line, charging")
        self.assertEqual(browser.evaluate(f"{lab}.querySelector('.big').textContent"), "96")
        # A chart: a line with points, drawn (it has a size on the screen).
        points = browser.wait(f"{lab}.querySelector('svg.spark polyline')"
                              f" && {lab}.querySelector('svg.spark polyline').getAttribute('points')",
                              what="a chart")
        self.assertGreaterEqual(len(points.split()), 2)
        width = browser.evaluate(f"{lab}.querySelector('svg.spark').getBoundingClientRect().width")
        self.assertGreater(width, 100)
        browser.evaluate("window.nutshimTestMarker = 'same page'")

        site.set_lab("OB DISCHRG", charge=80, runtime=900, vin=0.0)
        browser.wait(f"{lab}.dataset.severity === 'warning'", 30, "the lab card on battery")
        self.assertEqual(browser.evaluate(f"{lab}.querySelector('.badge').textContent"),
                         "On battery, discharging")
        self.assertEqual(browser.evaluate(f"{lab}.querySelector('.big').textContent"), "80")
        self.assertIn("1 on battery", browser.evaluate("document.getElementById('summary').textContent"))
        self.assertEqual(browser.evaluate("window.nutshimTestMarker"), "same page")
        self.assertGreaterEqual(int(browser.evaluate("document.body.dataset.refreshes")), 1)
        # The outage is shaded on the charts once sampled.
        browser.wait(f"{lab}.querySelector('rect.ob') !== null", 30, "the on-battery shading")
        self.assertEqual(browser.evaluate(
            "document.querySelector('article.card[data-ups=\"rack\"]').dataset.severity"), "ok")
        browser.screenshot(os.path.join(artifacts(), "status-page.png"))

        browser.phone()
        browser.wait("window.innerWidth === 390", 10, "the phone viewport")
        self.assertLessEqual(browser.evaluate("document.documentElement.scrollWidth"), 390)
        overflow = browser.evaluate(
            "Array.from(document.querySelectorAll('.figures dd')).filter(d => d.scrollWidth >"
            " d.clientWidth + 1).length")
        self.assertEqual(overflow, 0)
        browser.screenshot(os.path.join(artifacts(), "status-page-phone.png"))


class HttpsTests(SynchronousTestCase):
    def test_daemon_certificate(self) -> None:
        """
        C{HTTP_LISTEN <address> <port> TLS} serves HTTPS with the daemon's
        CERTFILE and its client-certificate rules: with CERTREQUEST 2 a
        scraper without a certificate from CERTPATH's CA gets nothing.
        """
        import ssl
        import sys

        from tests.harness import run

        confdir = os.path.abspath(self.mktemp())
        os.makedirs(confdir)
        certs = os.path.join(confdir, "certs")
        for args in (["init"], ["server", "localhost", "--san", "127.0.0.1"], ["client", "prometheus"]):
            out = run([sys.executable, "-m", "nutshim.pki.cli", "--dir", certs, *args])
            self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        port, http = free_port(), free_port()
        write(os.path.join(confdir, "ups.conf"), "[lab]\n driver = nutshim-sim\n port = lab.dev\n")
        write(os.path.join(confdir, "upsd.conf"),
              f"LISTEN 127.0.0.1 {port}\nCERTFILE certs/localhost.pem\nCERTPATH certs/ca.pem\n"
              f"CERTREQUEST 2\nHTTP_LISTEN 127.0.0.1 {http} TLS\n", 0o600)
        write(os.path.join(confdir, "upsd.users"), USERS, 0o600)
        proc = Process([twistd(), "-n", "--pidfile=", "nut-upsd", "--confdir", confdir],
                       os.path.join(confdir, "nutshim.log"), env=nut_env(confdir))
        self.addCleanup(proc.stop)
        try:
            wait_port(http)
        except AssertionError:
            raise AssertionError("nut-upsd did not start:\n" + proc.output())
        url = f"https://127.0.0.1:{http}/metrics"
        context = ssl.create_default_context(cafile=os.path.join(certs, "ca.pem"))
        context.load_cert_chain(os.path.join(certs, "prometheus.pem"))

        def fetch() -> bytes:
            with urllib.request.urlopen(url, timeout=10, context=context) as response:
                return response.read()  # type: ignore[no-any-return]

        wait_for(lambda: b'network_ups_tools_battery_charge{ups="lab"}' in fetch(), 20, "HTTPS metrics")
        anonymous = ssl.create_default_context(cafile=os.path.join(certs, "ca.pem"))
        with self.assertRaises((ssl.SSLError, ConnectionError, urllib.error.URLError)):
            with urllib.request.urlopen(url, timeout=10, context=anonymous) as response:
                response.read()
