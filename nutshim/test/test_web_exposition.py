"""
Tests for L{nutshim.web.exposition} and L{nutshim.web.nutexporter}:
C{/metrics} with DRuggeri/nut_exporter's names, and the daemon's own
metrics.
"""

from __future__ import annotations

import os
import re
from typing import Dict, List, Optional, Tuple

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from nutshim.protocol import commands as c
from nutshim.testing import MemoryDriver
from nutshim.upsd.registry import Registry, Session, UpsEntry
from nutshim.web.counters import DaemonCounters, Handshake
from nutshim.web.exposition import Exposition
from nutshim.web.nutexporter import DEFAULT_STATUSES, metric_name, sample_value
from nutshim.web.process import ProcessMetrics

SAMPLE = re.compile(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)\Z')


class Descriptions:
    def __init__(self, table: Optional[Dict[str, str]] = None) -> None:
        self.table = table or {}

    def describe_var(self, name: str) -> Optional[str]:
        return self.table.get(name)


def parse(text: str) -> Tuple[Dict[str, List[Tuple[str, str]]], Dict[str, str], Dict[str, str]]:
    """
    A strict reading of the text format: every family's samples together
    and after its HELP and TYPE lines.

    @return: samples by family (labels text, value), HELP by family, TYPE
        by family.
    """
    samples: Dict[str, List[Tuple[str, str]]] = {}
    helps: Dict[str, str] = {}
    types: Dict[str, str] = {}
    current = None
    closed = set()
    assert text.endswith("\n"), "the exposition ends with a newline"
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help = line[7:].partition(" ")
            assert name not in helps and name not in closed, f"{name} described twice"
            if current is not None:
                closed.add(current)
            current = name
            helps[name] = help
            continue
        if line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert name == current, f"TYPE {name} outside its family"
            types[name] = kind
            continue
        m = SAMPLE.match(line)
        assert m is not None, f"not a sample: {line!r}"
        name = m.group(1)
        assert name == current, f"sample {name} outside its family ({current})"
        float(m.group(3).replace("Inf", "inf"))
        samples.setdefault(name, []).append((m.group(2) or "", m.group(3)))
    return samples, helps, types


def ups(name: str = "lab", **values: str) -> UpsEntry:
    driver = MemoryDriver()
    for var, value in values.items():
        driver.state.set_info(var.replace("__", "-").replace("_", "."), value)
    return UpsEntry(name, "Lab UPS", driver, "dummy-ups", "lab.dev")


class Fixture:
    def __init__(self, *entries: UpsEntry, descriptions: Optional[Dict[str, str]] = None) -> None:
        self.registry = Registry()
        for entry in entries:
            self.registry.add(entry)
        self.clock = Clock()
        self.clock.advance(1000)
        self.counters = DaemonCounters()
        self.descriptions = Descriptions(descriptions)
        self.exposition = Exposition(self.registry, lambda: self.descriptions, self.counters,
                                     self.clock.seconds)

    def render(self) -> str:
        return self.exposition.render().decode("utf-8")

    def samples(self) -> Dict[str, List[Tuple[str, str]]]:
        return parse(self.render())[0]


class NutExporterNamesTests(SynchronousTestCase):
    """
    The UPS series as DRuggeri/nut_exporter names and values them.
    """

    def test_numbers(self) -> None:
        """
        Numeric variables are gauges named after the variable, dots and
        dashes as underscores, with the C{ups} label; text is left out.
        """
        f = Fixture(ups(battery_charge="100", input_voltage="231.5", ups_load=" 35 ",
                        ups_model="Lab 1500", battery_charge__low="20", ups_firmware="01.00.0003"))
        samples = f.samples()
        self.assertEqual(samples["network_ups_tools_battery_charge"], [('{ups="lab"}', "100")])
        self.assertEqual(samples["network_ups_tools_input_voltage"], [('{ups="lab"}', "231.5")])
        self.assertEqual(samples["network_ups_tools_ups_load"], [('{ups="lab"}', "35")])
        self.assertEqual(samples["network_ups_tools_battery_charge_low"], [('{ups="lab"}', "20")])
        self.assertNotIn("network_ups_tools_ups_model", samples)
        # Two dots: go.nut's ParseInt fails, so it is text.
        self.assertNotIn("network_ups_tools_ups_firmware", samples)

    def test_number_rules(self) -> None:
        """
        go.nut's reading of a value, and nut_exporter's on/off words.
        """
        cases = {
            "100": 100, "-5": -5, "27.3": 27.3, "1.2.3": None, ".": None, "-": None,
            "1e5": None, "0x10": None, "enabled": 1, "Disabled": 0, "ON": 1, "off": 0,
            "true": 1, "inactive": 0, "yes": None, "": None, " 42 ": 42,
            "99999999999999999999": None,
        }
        for text, expected in cases.items():
            self.assertEqual(sample_value(text), expected, text)

    def test_metric_name(self) -> None:
        self.assertEqual(metric_name("ups.beeper.status"), "network_ups_tools_ups_beeper_status")
        self.assertEqual(metric_name("outlet.1.delay-start"), "network_ups_tools_outlet_1_delay_start")
        self.assertEqual(metric_name("weird name/x"), "network_ups_tools_weird_name_x")

    def test_help(self) -> None:
        """
        HELP is C{"<description> (<variable>)"} from cmdvartab, else
        go.nut's C{Description unavailable}.
        """
        f = Fixture(ups(battery_charge="100", ups_load="35"),
                    descriptions={"battery.charge": "Battery charge (percent of full)"})
        _, helps, types = parse(f.render())
        self.assertEqual(helps["network_ups_tools_battery_charge"],
                         "Battery charge (percent of full) (battery.charge)")
        self.assertEqual(helps["network_ups_tools_ups_load"], "Description unavailable (ups.load)")
        self.assertEqual(types["network_ups_tools_ups_load"], "gauge")

    def test_status_flags(self) -> None:
        """
        One series per flag set (1) and 0 for each default flag not set.
        """
        f = Fixture(ups(ups_status="OB DISCHRG LB"))
        status = dict(f.samples()["network_ups_tools_ups_status"])
        for flag in ("OB", "DISCHRG", "LB"):
            self.assertEqual(status[f'{{ups="lab",flag="{flag}"}}'], "1")
        for flag in set(DEFAULT_STATUSES) - {"OB", "DISCHRG", "LB"}:
            self.assertEqual(status[f'{{ups="lab",flag="{flag}"}}'], "0")
        self.assertEqual(len(status), len(DEFAULT_STATUSES))

    def test_fsd_latch(self) -> None:
        """
        The FSD latch shows as the FSD flag, as GET VAR shows it.
        """
        entry = ups(ups_status="OB LB")
        f = Fixture(entry)
        f.render()
        entry.fsd = True
        status = dict(f.samples()["network_ups_tools_ups_status"])
        self.assertEqual(status['{ups="lab",flag="FSD"}'], "1")

    def test_device_info(self) -> None:
        """
        The device.* variables nut_exporter knows are labels of
        C{device_info}, missing ones empty, others ignored; values escaped.
        """
        f = Fixture(ups(device_model='Smart "UPS" 1500', device_mfr="APC", device_serial="X1\\2",
                        device_uptime="12", device_usb="x"))
        samples = f.samples()
        (labels, value), = samples["network_ups_tools_device_info"]
        self.assertEqual(value, "1")
        self.assertEqual(labels, '{ups="lab",model="Smart \\"UPS\\" 1500",mfr="APC",serial="X1\\\\2",'
                                 'type="",description="",contact="",location="",part="",macaddr=""}')
        # device.uptime is a number like any other.
        self.assertEqual(samples["network_ups_tools_device_uptime"], [('{ups="lab"}', "12")])

    def test_grouping(self) -> None:
        """
        Every family's samples are together, whatever the UPS order: the
        text format requires it (the strict parser checks).
        """
        f = Fixture(ups("a", battery_charge="10", ups_load="1"),
                    ups("b", ups_load="2", ups_status="OL"),
                    ups("c", battery_charge="30", ups_status="OL"))
        samples = f.samples()
        self.assertEqual(sorted(samples["network_ups_tools_battery_charge"]),
                         [('{ups="a"}', "10"), ('{ups="c"}', "30")])
        self.assertEqual(len(samples["network_ups_tools_ups_status"]), 2 * len(DEFAULT_STATUSES))

    def test_unavailable(self) -> None:
        """
        A UPS whose driver is gone or stale exports no UPS series, only
        nutshim's gauges saying so.
        """
        gone, stale = ups("gone", battery_charge="1"), ups("stale", battery_charge="2")
        gone.driver.connected = False  # type: ignore[misc]
        stale.driver.stale = True  # type: ignore[misc]
        f = Fixture(gone, stale, ups("ok", battery_charge="3"))
        samples = f.samples()
        self.assertEqual(samples["network_ups_tools_battery_charge"], [('{ups="ok"}', "3")])
        connected = dict(samples["nutshim_ups_driver_connected"])
        self.assertEqual(connected['{ups="gone"}'], "0")
        self.assertEqual(connected['{ups="stale"}'], "1")
        stale_gauge = dict(samples["nutshim_ups_data_stale"])
        self.assertEqual((stale_gauge['{ups="gone"}'], stale_gauge['{ups="stale"}'],
                          stale_gauge['{ups="ok"}']), ("1", "1", "0"))

    def test_updates(self) -> None:
        """
        A new value, a new variable, a removed variable and a UPS whose
        driver comes back all show on the next scrape.
        """
        entry = ups(battery_charge="100", ups_load="10")
        f = Fixture(entry)
        f.render()
        state = entry.driver.state
        state.set_info("battery.charge", "99")
        state.set_info("input.voltage", "229")
        state.del_info("ups.load")
        samples = f.samples()
        self.assertEqual(samples["network_ups_tools_battery_charge"], [('{ups="lab"}', "99")])
        self.assertEqual(samples["network_ups_tools_input_voltage"], [('{ups="lab"}', "229")])
        self.assertNotIn("network_ups_tools_ups_load", samples)
        entry.driver.connected = False  # type: ignore[misc]
        self.assertNotIn("network_ups_tools_battery_charge", f.samples())
        entry.driver.connected = True  # type: ignore[misc]
        self.assertEqual(f.samples()["network_ups_tools_battery_charge"], [('{ups="lab"}', "99")])

    def test_flapping_driver(self) -> None:
        """
        A UPS whose driver comes and goes costs the others nothing: their
        formatted series are kept, not rebuilt (a flaky USB cable must not
        make every scrape of a hundred UPSes a cold one).
        """
        a, b = ups("a", battery_charge="1"), ups("b", battery_charge="2")
        f = Fixture(a, b)
        f.render()
        kept = f.exposition.series._tracked[id(b)]
        b_plan = kept.formatter.plan
        a.driver.stale = True  # type: ignore[misc]
        self.assertEqual(f.samples()["network_ups_tools_battery_charge"], [('{ups="b"}', "2")])
        a.driver.stale = False  # type: ignore[misc]
        self.assertEqual(sorted(f.samples()["network_ups_tools_battery_charge"]),
                         [('{ups="a"}', "1"), ('{ups="b"}', "2")])
        self.assertIs(f.exposition.series._tracked[id(b)], kept)
        self.assertIs(kept.formatter.plan, b_plan)

    def test_value_becomes_text(self) -> None:
        """
        A variable that stops being a number stops being exported.
        """
        entry = ups(battery_charge="100")
        f = Fixture(entry)
        f.render()
        entry.driver.state.set_info("battery.charge", "unknown")
        self.assertNotIn("network_ups_tools_battery_charge", f.samples())

    def test_reload_renames(self) -> None:
        """
        A UPS removed and another added (a reload) are followed.
        """
        a = ups("a", battery_charge="1")
        f = Fixture(a)
        f.render()
        f.registry.remove(a)
        f.registry.add(ups("b", battery_charge="2"))
        self.assertEqual(f.samples()["network_ups_tools_battery_charge"], [('{ups="b"}', "2")])

    def test_two_spellings(self) -> None:
        """
        Two variables with one metric name: the first (in LIST VAR order)
        is exported, once.
        """
        entry = ups(battery_charge__low="10")
        entry.driver.state.set_info("battery.charge.low", "20")
        f = Fixture(entry)
        # "-" sorts before ".": battery.charge-low is first.
        self.assertEqual(f.samples()["network_ups_tools_battery_charge_low"], [('{ups="lab"}', "10")])

    def test_label_escaping(self) -> None:
        """
        A UPS name that needs escaping in a label value gets it.
        """
        f = Fixture(ups('we"ird\\', battery_charge="5"))
        self.assertEqual(f.samples()["network_ups_tools_battery_charge"],
                         [('{ups="we\\"ird\\\\"}', "5")])


class UpsMetricsTests(SynchronousTestCase):
    """
    C{/ups_metrics}: one UPS exactly as nut_exporter serves it.
    """

    def test_one_ups_without_label(self) -> None:
        f = Fixture(ups(battery_charge="100", ups_status="OL"))
        code, body = f.exposition.render_ups(None)
        self.assertEqual(code, 200)
        samples = parse(body.decode())[0]
        self.assertEqual(samples["network_ups_tools_battery_charge"], [("", "100")])
        self.assertIn(('{flag="OL"}', "1"), samples["network_ups_tools_ups_status"])
        self.assertNotIn("nutshim_ups", samples)

    def test_choose(self) -> None:
        f = Fixture(ups("a", battery_charge="1"), ups("b", battery_charge="2"))
        self.assertEqual(f.exposition.render_ups(None)[0], 400)
        self.assertEqual(f.exposition.render_ups("nope")[0], 404)
        code, body = f.exposition.render_ups("B")
        self.assertEqual(parse(body.decode())[0]["network_ups_tools_battery_charge"], [("", "2")])

    def test_variables_and_statuses(self) -> None:
        f = Fixture(ups(battery_charge="1", ups_load="5", ups_status="OL"))
        code, body = f.exposition.render_ups(None, ["ups.load", "ups.status"], ["OB"])
        samples = parse(body.decode())[0]
        self.assertNotIn("network_ups_tools_battery_charge", samples)
        self.assertEqual(sorted(samples["network_ups_tools_ups_status"]),
                         [('{flag="OB"}', "0"), ('{flag="OL"}', "1")])

    def test_unavailable(self) -> None:
        entry = ups(battery_charge="1")
        entry.driver.stale = True  # type: ignore[misc]
        self.assertEqual(Fixture(entry).exposition.render_ups(None)[0], 503)


class DaemonMetricsTests(SynchronousTestCase):
    """
    nutshim's own metrics.
    """

    def test_counters(self) -> None:
        f = Fixture(ups(battery_charge="1"))
        counters = f.counters
        counters.requests[c.GetVar] = 7
        counters.requests[c.ListVar] = 2
        counters.error(c.GetVar, b"ERR UNKNOWN-UPS\n")
        counters.error(c.GetVar, b"ERR UNKNOWN-UPS\n")
        counters.opened("k1", "127.0.0.1:3493")
        counters.opened("k2", "127.0.0.1:3493")
        counters.handshake("k2", Handshake.OK)
        counters.handshake("k1", Handshake.TIMEOUT)
        counters.closed("k1")
        counters.reloaded(False, 1234.0)
        samples = f.samples()
        self.assertEqual(dict(samples["nutshim_requests_total"]),
                         {'{command="GET VAR"}': "7", '{command="LIST VAR"}': "2"})
        self.assertEqual(samples["nutshim_request_errors_total"],
                         [('{command="GET VAR",error="UNKNOWN-UPS"}', "2")])
        self.assertEqual(samples["nutshim_connections_accepted_total"],
                         [('{listener="127.0.0.1:3493"}', "2")])
        self.assertEqual(dict(samples["nutshim_connections_open"]),
                         {'{listener="127.0.0.1:3493",transport="plain"}': "0",
                          '{listener="127.0.0.1:3493",transport="tls"}': "1"})
        self.assertEqual(dict(samples["nutshim_tls_handshakes_total"]),
                         {'{listener="127.0.0.1:3493",result="ok"}': "1",
                          '{listener="127.0.0.1:3493",result="timeout"}': "1"})
        self.assertEqual(samples["nutshim_config_reloads_total"], [("", "1")])
        self.assertEqual(samples["nutshim_config_reload_failures_total"], [("", "1")])
        self.assertEqual(samples["nutshim_config_last_reload_successful"], [("", "0")])
        self.assertEqual(samples["nutshim_config_last_reload_timestamp_seconds"], [("", "1234")])
        _, _, types = parse(f.render())
        self.assertEqual(types["nutshim_requests_total"], "counter")

    def test_ups_gauges(self) -> None:
        entry = ups(battery_charge="1", ups_status="OL")
        entry.fsd = True
        entry.numlogins = 2
        f = Fixture(entry)
        session = Session("127.0.0.1")
        f.registry.open(session)
        samples = f.samples()
        self.assertEqual(samples["nutshim_ups_fsd"], [('{ups="lab"}', "1")])
        self.assertEqual(samples["nutshim_ups_logins"], [('{ups="lab"}', "2")])
        self.assertEqual(samples["nutshim_ups_variables"], [('{ups="lab"}', "2")])
        self.assertEqual(samples["nutshim_clients"], [("", "1")])
        self.assertEqual(samples["nutshim_ups_info"],
                         [('{ups="lab",driver="dummy-ups",port="lab.dev",description="Lab UPS"}', "1")])
        self.assertEqual(samples["nutshim_ups_data_age_seconds"], [('{ups="lab"}', "0")])

    def test_data_age(self) -> None:
        """
        A driver that says when it last spoke (the driver socket) has an
        age; a disconnected one has none.
        """
        entry = ups(battery_charge="1")
        entry.driver.last_heard = 990.0  # type: ignore[attr-defined]
        f = Fixture(entry)
        self.assertEqual(f.samples()["nutshim_ups_data_age_seconds"], [('{ups="lab"}', "10")])
        entry.driver.connected = False  # type: ignore[misc]
        self.assertNotIn("nutshim_ups_data_age_seconds", f.samples())

    def test_process(self) -> None:
        """
        The standard process metrics, from a /proc tree.
        """
        proc = self.mktemp()
        os.makedirs(os.path.join(proc, "self", "fd"))
        for n in range(3):
            open(os.path.join(proc, "self", "fd", str(n)), "w").close()
        with open(os.path.join(proc, "stat"), "w") as f:
            f.write("cpu  1 2 3\nbtime 1700000000\n")
        fields = ["S"] + ["0"] * 40
        fields[11], fields[12] = "250", "150"  # utime, stime (ticks)
        fields[19] = "500"  # starttime (ticks after boot)
        fields[20], fields[21] = "1000000", "10"  # vsize, rss (pages)
        with open(os.path.join(proc, "self", "stat"), "w") as f:
            f.write("42 (twistd (x)) " + " ".join(fields) + "\n")
        metrics = ProcessMetrics(proc, max_fds=lambda: 1024)
        fx = Fixture(ups())
        fx.exposition.process = metrics
        samples = fx.samples()
        ticks = os.sysconf("SC_CLK_TCK")
        self.assertEqual(float(samples["process_cpu_seconds_total"][0][1]), 400 / ticks)
        self.assertEqual(samples["process_open_fds"], [("", "3")])
        self.assertEqual(samples["process_max_fds"], [("", "1024")])
        self.assertEqual(samples["process_virtual_memory_bytes"], [("", "1000000")])
        self.assertEqual(float(samples["process_resident_memory_bytes"][0][1]),
                         10 * os.sysconf("SC_PAGE_SIZE"))
        self.assertEqual(float(samples["process_start_time_seconds"][0][1]), 1700000000 + 500 / ticks)

    def test_real_process(self) -> None:
        """
        This process's own numbers are there and plausible.
        """
        f = Fixture(ups())
        f.exposition.process = ProcessMetrics()
        samples = f.samples()
        self.assertGreater(float(samples["process_resident_memory_bytes"][0][1]), 1e6)
        self.assertGreater(float(samples["process_open_fds"][0][1]), 0)
