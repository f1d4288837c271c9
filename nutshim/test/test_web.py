"""
Tests for the pure parts of the status page and the JSON view:
L{nutshim.web.status}, L{nutshim.web.snapshot}, L{nutshim.web.history},
L{nutshim.web.page}, L{nutshim.web.jsonview}.
"""

from __future__ import annotations

import json
import math
import re

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from nutshim.state import Flags
from nutshim.testing import MemoryDriver
from nutshim.upsd.registry import Registry, Session, UpsEntry
from nutshim.web import page
from nutshim.web.history import History, Ring
from nutshim.web.jsonview import JsonView, all_json, history_json, ups_json
from nutshim.web.snapshot import data_age, delivered, number
from nutshim.web.status import Severity, describe, severity, split_flags


def entry(name: str = "lab", **values: str) -> UpsEntry:
    driver = MemoryDriver()
    for var, value in values.items():
        driver.state.set_info(var.replace("_", "."), value)
    return UpsEntry(name, "Lab <UPS>", driver, "dummy-ups", "lab.dev")


def registry(*entries: UpsEntry) -> Registry:
    reg = Registry()
    for e in entries:
        reg.add(e)
    return reg


class StatusTests(SynchronousTestCase):
    def test_words(self) -> None:
        self.assertEqual(describe(("OL", "CHRG")), "On line, charging")
        self.assertEqual(describe(("OB", "DISCHRG", "LB")), "On battery, discharging, low battery")
        self.assertEqual(describe(("XYZ",)), "XYZ")
        self.assertEqual(describe(()), "No status")

    def test_severity(self) -> None:
        self.assertEqual(severity(("OL",)), Severity.OK)
        self.assertEqual(severity(("OL", "CHRG", "TRIM")), Severity.OK)
        self.assertEqual(severity(("OB", "DISCHRG")), Severity.WARNING)
        self.assertEqual(severity(("OL", "RB")), Severity.WARNING)
        self.assertEqual(severity(("OB", "LB")), Severity.CRITICAL)
        self.assertEqual(severity(("FSD", "OL")), Severity.CRITICAL)
        self.assertEqual(severity(("OL",), available=False), Severity.UNKNOWN)
        self.assertEqual(severity(()), Severity.UNKNOWN)
        # Without OL and without anything known: not normal.
        self.assertEqual(severity(("XYZ",)), Severity.WARNING)

    def test_fsd(self) -> None:
        self.assertEqual(split_flags("OB LB", fsd=True), ("FSD", "OB", "LB"))
        self.assertEqual(split_flags("FSD OB", fsd=True), ("FSD", "OB"))


class SnapshotTests(SynchronousTestCase):
    def test_number(self) -> None:
        self.assertEqual(number("230"), 230)
        self.assertEqual(number("27.3"), 27.3)
        self.assertIsNone(number("OL"))

    def test_delivered(self) -> None:
        """
        First data: connected, fresh, not empty; a driver socket's own
        C{dump_done} when it has one.
        """
        e = entry()
        self.assertFalse(delivered(e))
        e.driver.state.set_info("ups.status", "OL")
        self.assertTrue(delivered(e))
        e.driver.dump_done = False  # type: ignore[attr-defined]
        self.assertFalse(delivered(e))
        e.driver.dump_done = True  # type: ignore[attr-defined]
        e.driver.stale = True
        self.assertFalse(delivered(e))

    def test_age(self) -> None:
        e = entry()
        self.assertEqual(data_age(e, 100.0), 0.0)
        e.driver.last_heard = 90.0  # type: ignore[attr-defined]
        self.assertEqual(data_age(e, 100.0), 10.0)
        e.driver.connected = False
        self.assertIsNone(data_age(e, 100.0))


class RingTests(SynchronousTestCase):
    def test_wraps(self) -> None:
        ring = Ring(3)
        for t in range(5):
            ring.append(float(t), (t, t * 2.0, math.nan), t % 2 == 1)
        points = ring.points()
        self.assertEqual([p[0] for p in points], [2.0, 3.0, 4.0])
        self.assertEqual([p[2] for p in points], [4.0, 6.0, 8.0])
        self.assertEqual([p[4] for p in points], [False, True, False])
        self.assertTrue(math.isnan(points[0][3]))
        self.assertEqual(len(ring), 3)
        self.assertEqual(ring.version, 5)
        self.assertEqual([p[0] for p in ring.points(since=3.0)], [3.0, 4.0])


class HistoryTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.e = entry(battery_charge="100", ups_load="20", input_voltage="230", ups_status="OL")
        self.reg = registry(self.e)
        self.history = History(self.reg, self.clock, interval=30, capacity=10)
        self.history.start()
        self.addCleanup(self.history.stop)

    def test_interval(self) -> None:
        """
        A sample at start and one per interval; the ring keeps capacity.
        """
        self.assertEqual(len(self.history.points("LAB")), 1)
        self.clock.advance(30)
        self.e.driver.state.set_info("battery.charge", "90")
        self.clock.advance(30)
        points = self.history.points("lab")
        self.assertEqual([p[0] for p in points], [0.0, 30.0, 60.0])
        self.assertEqual([p[1] for p in points], [100.0, 100.0, 90.0])
        for _ in range(20):
            self.clock.advance(30)
        self.assertEqual(len(self.history.points("lab")), 10)

    def test_status_change(self) -> None:
        """
        Going on battery is sampled within a second, not at the next
        interval; a driver losing its data is a gap.
        """
        self.clock.advance(5)
        self.e.driver.state.set_info("ups.status", "OB DISCHRG")
        self.clock.advance(1)
        points = self.history.points("lab")
        self.assertEqual(len(points), 2)
        self.assertTrue(points[-1][4])
        self.e.driver.stale = True
        self.clock.advance(1)
        self.assertTrue(math.isnan(self.history.points("lab")[-1][1]))

    def test_no_leading_gap(self) -> None:
        """
        A UPS whose driver has not delivered yet gets no gap point: its
        chart starts with its first data (the history starts before the
        drivers do).
        """
        late = entry("late", battery_charge="50", ups_status="OL")
        late.driver.connected = False
        self.reg.add(late)
        self.clock.advance(30)
        self.assertEqual(self.history.points("late"), [])
        late.driver.connected = True
        self.clock.advance(1)
        self.assertEqual([p[1] for p in self.history.points("late")], [50.0])

    def test_removed(self) -> None:
        self.reg.remove(self.e)
        self.clock.advance(30)
        self.assertEqual(self.history.points("lab"), [])
        self.assertIsNone(self.history.version("lab"))

    def test_stop(self) -> None:
        self.history.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])


class ChartTests(SynchronousTestCase):
    def test_downsample(self) -> None:
        points = [(float(t), float(t), math.nan, 1.0, t == 7) for t in range(1000)]
        out = page.downsample(points, 100)
        self.assertEqual(len(out), 100)
        self.assertEqual(out[0][1], 4.5)
        self.assertTrue(math.isnan(out[0][2]))
        self.assertTrue(out[0][4])
        self.assertFalse(out[1][4])
        self.assertEqual(out[-1][0], 999.0)

    def test_svg(self) -> None:
        """
        A polyline per unbroken run; a gap splits it; on battery is shaded.
        """
        points = [(0.0, 100.0, 0, 0, False), (10.0, 90.0, 0, 0, True), (20.0, math.nan, 0, 0, True),
                  (30.0, 80.0, 0, 0, False), (40.0, 70.0, 0, 0, False)]
        svg = page.chart_svg(points, 1, "Charge", "%", (0.0, 100.0))
        self.assertEqual(svg.count("<polyline"), 2)
        self.assertEqual(svg.count('class="ob"'), 1)
        self.assertIn("70–100 %", svg)
        # A run of one point between gaps is a dot.
        points[3] = (30.0, math.nan, 0, 0, False)
        svg = page.chart_svg(points, 1, "Charge", "%", (0.0, 100.0))
        self.assertEqual((svg.count("<polyline"), svg.count("<circle")), (1, 1))

    def test_single_sample(self) -> None:
        """
        One sample is a flat line across, not nothing.
        """
        svg = page.chart_svg([(5.0, 50.0, 0, 0, False)], 1, "Charge", "%", (0.0, 100.0))
        m = re.search(r'points="([^"]+)"', svg)
        assert m is not None
        self.assertEqual(m.group(1), "0.0,30.0 300.0,30.0")

    def test_nothing(self) -> None:
        self.assertEqual(page.chart_svg([(5.0, math.nan, 0, 0, False)], 1, "C", "%", None), "")

    def test_runtime(self) -> None:
        self.assertEqual(page.format_runtime(45), "45 s")
        self.assertEqual(page.format_runtime(750), "12 min")
        self.assertEqual(page.format_runtime(3900), "1 h 05 min")
        self.assertEqual(page.format_runtime(None), "–")


class CardTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.e = entry(battery_charge="87", ups_load="23", input_voltage="229.5", output_voltage="230",
                       battery_runtime="1500", ups_status="OL CHRG", device_model="<b>M</b>")
        self.reg = registry(self.e)
        self.history = History(self.reg, self.clock, interval=30)
        self.history.start()
        self.addCleanup(self.history.stop)
        self.cards = page.CardRenderer(self.reg, self.history)

    def test_card(self) -> None:
        """
        Name, status in words and colour, the figures, charts; driver and
        configuration text escaped.
        """
        self.clock.advance(30)
        html = self.cards.render(self.clock.seconds())
        self.assertIn('data-ups="lab" data-severity="ok"', html)
        self.assertIn('<span class="badge">On line, charging</span>', html)
        self.assertIn('<span class="big">87</span>', html)
        self.assertIn('data-field="runtime">25 min<', html)
        self.assertIn('data-field="load">23 %<', html)
        self.assertIn('data-field="input">229.5 V<', html)
        self.assertIn('data-field="output">230 V<', html)
        self.assertIn("Lab &lt;UPS&gt;", html)
        self.assertIn("&lt;b&gt;M&lt;/b&gt;", html)
        self.assertNotIn("<b>", html)
        self.assertEqual(html.count('class="chart"'), 3)
        self.assertIn("1 UPS · 0 clients", html)

    def test_changes(self) -> None:
        """
        A UPS going on battery changes its card at the next render.
        """
        self.cards.render(0)
        self.e.driver.state.set_info("ups.status", "OB DISCHRG")
        html = self.cards.render(1)
        self.assertIn('data-severity="warning"', html)
        self.assertIn("On battery, discharging", html)
        self.assertIn("1 on battery", html)
        self.e.driver.connected = False
        self.assertIn("Driver not connected", self.cards.render(2))

    def test_chart_budget(self) -> None:
        """
        Many UPSes sampled at once: one render rebuilds at most
        CHART_REBUILDS charts, the next ones the rest.
        """
        reg = registry(*[entry(f"u{i}", battery_charge="50", ups_status="OL")
                         for i in range(2 * page.CHART_REBUILDS + 1)])
        history = History(reg, self.clock, interval=30)
        history.sample()
        cards = page.CardRenderer(reg, history)
        self.assertEqual(cards.render(0).count('class="charts"'), page.CHART_REBUILDS)
        self.assertEqual(cards.render(0).count('class="charts"'), 2 * page.CHART_REBUILDS)
        self.assertEqual(cards.render(0).count('class="charts"'), 2 * page.CHART_REBUILDS + 1)

    def test_page(self) -> None:
        """
        The page: its own assets only, a script-less fallback, phones.
        """
        html = page.render_page(self.cards.render(0), "host<1>")
        self.assertIn('<link rel="stylesheet" href="status.css">', html)
        self.assertIn('<script src="status.js" defer></script>', html)
        self.assertIn('name="viewport"', html)
        self.assertIn('<noscript><meta http-equiv="refresh" content="30"></noscript>', html)
        self.assertIn("host&lt;1&gt;", html)
        self.assertNotIn("http://", html)
        self.assertNotIn("https://", html)
        self.assertNotIn("style=", html)


class JsonTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.e = entry(battery_charge="87", ups_status="OL", ups_id="x")
        st = self.e.driver.state
        st.set_flags("ups.id", ["RW", "STRING"])
        st.set_aux("ups.id", 16)
        st.set_info("input.transfer.low", "160")
        st.set_flags("input.transfer.low", ["RW"])
        st.add_range("input.transfer.low", 150, 170)
        st.set_info("ups.beeper.status", "enabled")
        st.add_enum("ups.beeper.status", 'en"abled')
        st.add_command("beeper.toggle")
        self.reg = registry(self.e, UpsEntry("gone", None, MemoryDriver(connected=False), "snmp-ups", "h"))
        session = Session("192.0.2.1")
        session.login = self.e
        self.reg.open(session)

    def test_schema(self) -> None:
        body = ups_json(self.e, self.reg, 100.0)
        self.assertEqual(body["name"], "lab")
        self.assertEqual(body["description"], "Lab <UPS>")
        self.assertTrue(body["available"])
        self.assertEqual(body["driver"], {"name": "dummy-ups", "port": "lab.dev", "connected": True,
                                          "stale": False, "data_age_seconds": 0.0})
        self.assertEqual(body["status"], {"value": "OL", "flags": ["OL"], "text": "On line",
                                          "severity": "ok"})
        self.assertEqual(body["clients"], [{"address": "192.0.2.1", "tls": False}])
        self.assertEqual(body["commands"], ["beeper.toggle"])
        v = body["variables"]
        self.assertEqual(v["battery.charge"], {"value": "87", "number": 87.0, "type": "NUMBER",
                                               "rw": False, "maxlen": None, "enum": None, "range": None})
        self.assertEqual(v["ups.id"]["type"], "STRING")
        self.assertEqual(v["ups.id"]["maxlen"], 16)
        self.assertIsNone(v["ups.id"]["number"])
        self.assertEqual(v["input.transfer.low"]["range"], [[150, 170]])
        self.assertTrue(v["input.transfer.low"]["rw"])
        self.assertEqual(v["ups.beeper.status"]["enum"], ['en"abled'])

    def test_fsd_and_unavailable(self) -> None:
        self.e.fsd = True
        body = ups_json(self.e, self.reg, 0)
        self.assertEqual(body["variables"]["ups.status"]["value"], "FSD OL")
        self.assertEqual(body["status"]["flags"], ["FSD", "OL"])
        gone = ups_json(self.reg.get("gone"), self.reg, 0)  # type: ignore[arg-type]
        self.assertEqual((gone["available"], gone["variables"], gone["status"]["text"],
                          gone["status"]["severity"], gone["driver"]["data_age_seconds"]),
                         (False, {}, "Driver not connected", "unknown", None))

    def test_view_matches(self) -> None:
        """
        The remembering encoder gives the same JSON as encoding afresh,
        before and after a change.
        """
        view = JsonView(self.reg)
        self.assertEqual(json.loads(view.all(5.0)), all_json(self.reg, 5.0))
        self.e.driver.state.set_info("battery.charge", "86")
        self.e.driver.state.set_flags("battery.charge", ["RW"])
        self.assertEqual(json.loads(view.all(6.0)), all_json(self.reg, 6.0))
        self.assertEqual(json.loads(view.one(self.e, 6.0)), ups_json(self.e, self.reg, 6.0))

    def test_history(self) -> None:
        body = history_json(self.e, [(1.0, 50.0, math.nan, 230.0, True)], 30.0)
        self.assertEqual(body["points"], [{"time": 1.0, "battery.charge": 50.0, "ups.load": None,
                                           "input.voltage": 230.0, "on_battery": True}])
        self.assertEqual(body["interval_seconds"], 30.0)
        json.dumps(body, allow_nan=False)

    def test_flags_constant(self) -> None:
        self.assertTrue(self.e.driver.state.get("ups.id").flags & Flags.STRING)  # type: ignore[union-attr]
