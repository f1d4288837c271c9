"""
The real NUT 2.8.0 clients (Debian's nut-client and python3-nut) and aionut
against nutshim's upsd, as installed: upsc, upscmd, upsrw, upslog,
PyNUTClient, aionut and upsmon as Primary and Secondary.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from twisted.trial.unittest import SynchronousTestCase

from tests.harness import (
    NUT_BIN,
    UPSD_USERS,
    free_port,
    nut_env,
    nutshim_daemon,
    private_run,
    Process,
    query,
    require,
    run,
    upsmon_conf,
    wait_for,
    write,
)


LAB_DEV = """
# A static UPS with declared types (nutshim extensions).
device.mfr: Acme
device.model: Lab 1500
ups.mfr: Acme
ups.model: Lab 1500
ups.status: OL
battery.charge: 100
battery.runtime: 3600
ups.id: lab
ups.beeper.status: enabled
input.transfer.low: 160
TYPE ups.id RW STRING:16
TYPE ups.beeper.status RW STRING:10
ENUM ups.beeper.status enabled disabled muted
TYPE input.transfer.low RW NUMBER
RANGE input.transfer.low 150 170
TYPE battery.charge NUMBER
CMD beeper.disable ups.beeper.status: disabled
CMD beeper.enable ups.beeper.status: enabled
CMD test.battery.start
"""


def make_confdir(testcase: SynchronousTestCase, sections: str, extra_files: dict[str, str] | None = None) -> str:
    confdir = os.path.abspath(testcase.mktemp())
    os.makedirs(confdir)
    write(os.path.join(confdir, "ups.conf"), sections)
    write(os.path.join(confdir, "upsd.conf"), "MAXAGE 15\n", 0o640)
    write(os.path.join(confdir, "upsd.users"), UPSD_USERS, 0o640)
    write(os.path.join(confdir, "lab.dev"), LAB_DEV)
    for name, text in (extra_files or {}).items():
        write(os.path.join(confdir, name), text)
    return confdir


class ToolsTests(SynchronousTestCase):
    """
    upsc, upscmd, upsrw, upslog, PyNUTClient and aionut.
    """

    def setUp(self) -> None:
        require("upsc", "upscmd", "upsrw", "upslog")
        self.confdir = make_confdir(
            self,
            '[lab]\n  driver = nutshim-sim\n  port = lab.dev\n  desc = "Lab UPS"\n'
            "[second]\n  driver = nutshim-sim\n  port = lab.dev\n",
        )
        self.port = free_port()
        self.daemon = nutshim_daemon(self, self.confdir, self.port)
        self.host = f"127.0.0.1:{self.port}"

    def tool(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run(list(args), env=nut_env(self.confdir))

    def test_upsc_list(self) -> None:
        """
        upsc -l and -L list the UPSes in ups.conf order.
        """
        out = self.tool("upsc", "-l", self.host)
        self.assertEqual(out.stdout, "lab\nsecond\n", out.stderr)
        out = self.tool("upsc", "-L", self.host)
        self.assertEqual(out.stdout, "lab: Lab UPS\nsecond: Description unavailable\n")

    def test_upsc_vars(self) -> None:
        """
        upsc prints every variable and one on request; unknown ones are
        NUT's error text.
        """
        out = self.tool("upsc", f"lab@{self.host}")
        self.assertIn("device.model: Lab 1500\n", out.stdout, out.stderr)
        self.assertIn("ups.status: OL\n", out.stdout)
        self.assertIn("driver.name: nutshim-sim\n", out.stdout)
        out = self.tool("upsc", f"lab@{self.host}", "battery.charge")
        self.assertEqual(out.stdout, "100\n")
        out = self.tool("upsc", f"lab@{self.host}", "ups.bogus")
        self.assertIn("Error: Variable not supported by UPS", out.stderr)
        out = self.tool("upsc", f"nosuch@{self.host}")
        self.assertIn("Error: Unknown UPS", out.stderr)

    def test_upsc_clients(self) -> None:
        """
        upsc -c lists the clients logged in to a UPS.
        """
        with __import__("socket").create_connection(("127.0.0.1", self.port)) as s:
            s.sendall(b"USERNAME monsec\nPASSWORD secpw\nLOGIN lab\n")
            got = b""
            while got.count(b"\n") < 3:
                got += s.recv(100)
            self.assertEqual(got, b"OK\nOK\nOK\n")
            out = self.tool("upsc", "-c", f"lab@{self.host}")
            self.assertEqual(out.stdout, "127.0.0.1\n", out.stderr)

    def test_upscmd(self) -> None:
        """
        upscmd -l lists commands with descriptions; a command runs and -w
        waits for its tracked result.
        """
        out = self.tool("upscmd", "-l", f"lab@{self.host}")
        self.assertIn("Instant commands supported on UPS [lab]:", out.stdout, out.stderr)
        self.assertIn("beeper.disable - ", out.stdout)
        out = self.tool("upscmd", "-u", "admin", "-p", "adminpw", f"lab@{self.host}", "beeper.disable")
        self.assertEqual(out.returncode, 0, out.stderr)
        wait_for(
            lambda: self.tool("upsc", f"lab@{self.host}", "ups.beeper.status").stdout == "disabled\n",
            10,
            "beeper disabled",
        )
        out = self.tool("upscmd", "-w", "-u", "admin", "-p", "adminpw", f"lab@{self.host}", "beeper.enable")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("SUCCESS", out.stdout + out.stderr)
        out = self.tool("upscmd", "-u", "monsec", "-p", "secpw", f"lab@{self.host}", "beeper.enable")
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("ACCESS-DENIED", out.stderr)

    def test_upsrw(self) -> None:
        """
        upsrw lists writable variables with types, enums and ranges, and
        sets one, with validation.
        """
        out = self.tool("upsrw", f"lab@{self.host}")
        self.assertIn("[ups.beeper.status]", out.stdout, out.stderr)
        self.assertIn("Type: ENUM", out.stdout)
        self.assertIn("Option: \"muted\"", out.stdout)
        self.assertIn("Type: RANGE", out.stdout)
        self.assertIn("Option: \"150-170\"", out.stdout)
        out = self.tool("upsrw", "-s", "ups.id=rack-7", "-u", "admin", "-p", "adminpw", f"lab@{self.host}")
        self.assertEqual(out.returncode, 0, out.stderr)
        wait_for(lambda: self.tool("upsc", f"lab@{self.host}", "ups.id").stdout == "rack-7\n", 10, "ups.id")
        out = self.tool("upsrw", "-s", "input.transfer.low=999", "-u", "admin", "-p", "adminpw", f"lab@{self.host}")
        self.assertIn("ERR INVALID-VALUE", out.stderr)

    def test_upslog(self) -> None:
        """
        upslog writes one sample line for the UPS.
        """
        logfile = os.path.join(self.confdir, "ups.log")
        proc = Process(
            ["upslog", "-F", "-s", f"lab@{self.host}", "-l", logfile, "-i", "1", "-f", "%VAR ups.status% %VAR battery.charge%"],
            os.path.join(self.confdir, "upslog.out"),
            env=nut_env(self.confdir),
        )
        self.addCleanup(proc.stop)
        wait_for(lambda: os.path.exists(logfile) and "OL 100" in open(logfile).read(), 15, "upslog sample")

    def test_pynut(self) -> None:
        """
        python3-nut's PyNUTClient lists, reads, sets, runs commands and FSD.
        """
        require("/usr/bin/python3", "/usr/lib/python3/dist-packages/PyNUT.py")
        script = textwrap.dedent(
            f"""
            import sys
            sys.path.insert(0, "/usr/lib/python3/dist-packages")
            import PyNUT
            c = PyNUT.PyNUTClient(host="127.0.0.1", port={self.port}, login="admin", password="adminpw")
            print(sorted(c.GetUPSList()))
            v = c.GetUPSVars("lab")
            print(v[b"ups.status"] if b"ups.status" in v else v["ups.status"])
            print(sorted(c.GetUPSCommands("lab")))
            print(sorted(c.GetRWVars("lab")))
            print(c.RunUPSCommand("lab", "test.battery.start"))
            print(c.SetRWVar("lab", "ups.id", "py"))
            print(c.ver())
            """
        )
        out = run(["/usr/bin/python3", "-c", script])
        self.assertEqual(out.returncode, 0, out.stderr)
        lines = out.stdout.splitlines()
        self.assertIn("lab", lines[0])
        self.assertIn("OL", lines[1])
        self.assertIn("beeper.enable", lines[2])
        self.assertIn("ups.id", lines[3])
        self.assertEqual(lines[4], "OK")
        self.assertEqual(lines[5], "OK")
        self.assertIn("nutshim", lines[6])

    def test_aionut(self) -> None:
        """
        aionut (Home Assistant's client) lists UPSes, variables and commands
        and runs one.
        """
        script = textwrap.dedent(
            f"""
            import asyncio
            from aionut import AIONUTClient
            async def main():
                c = AIONUTClient("127.0.0.1", {self.port}, "admin", "adminpw")
                print(await c.list_ups())
                v = await c.list_vars("lab")
                print(v["ups.status"])
                print(sorted(await c.list_commands("lab")))
                print(await c.description("lab"))
                await c.run_command("lab", "test.battery.start")
                c.shutdown()
            asyncio.run(main())
            """
        )
        out = run([sys.executable, "-c", script])
        self.assertEqual(out.returncode, 0, out.stderr)
        lines = out.stdout.splitlines()
        self.assertEqual(lines[0], "{'lab': 'Lab UPS', 'second': 'Description unavailable'}")
        self.assertEqual(lines[1], "OL")
        self.assertIn("test.battery.start", lines[2])
        self.assertEqual(lines[3], "Lab UPS")


OUTAGE_SEQ = """
ups.mfr: Acme
ups.model: Outage
battery.charge: 100
ups.status: OL
TIMER 4
ups.status: OB
battery.charge: 60
TIMER 4
ups.status: OB LB
battery.charge: 10
TIMER 600
"""


class UpsmonTests(SynchronousTestCase):
    """
    Real upsmon as Primary and as Secondary against nutshim: OL, OB, OB LB,
    FSD to the Secondary, shutdown commands.
    """

    def test_primary_secondary(self) -> None:
        """
        The Primary sets FSD on OB LB, the Secondary sees it and shuts down
        first, then the Primary shuts down.
        """
        upsmon = os.path.join(NUT_BIN, "upsmon")
        require(upsmon)
        confdir = make_confdir(
            self, "[sim]\n  driver = nutshim-sim\n  port = outage.seq\n", {"outage.seq": OUTAGE_SEQ}
        )
        port = free_port()
        nutshim_daemon(self, confdir, port)
        mons = {}
        for tag, user, pw, role in (
            ("secondary", "monsec", "secpw", "secondary"),
            ("primary", "monpri", "pripw", "primary"),
        ):
            mdir = os.path.join(confdir, tag)
            os.makedirs(mdir)
            write(os.path.join(mdir, "upsmon.conf"), upsmon_conf(confdir, port, user, pw, role, tag), 0o600)
            proc = Process(
                private_run(mdir, [upsmon, "-F", "-D"]),
                os.path.join(confdir, f"upsmon-{tag}.log"),
                env=nut_env(mdir),
            )
            self.addCleanup(proc.stop)
            mons[tag] = proc
        # Both log in: the attach count reaches 2.
        wait_for(
            lambda: query(port, b"GET NUMLOGINS sim\n") == b"NUMLOGINS sim 2\n", 20, "both upsmons logged in"
        )
        shutdown_secondary = os.path.join(confdir, "shutdown-secondary")
        shutdown_primary = os.path.join(confdir, "shutdown-primary")
        wait_for(lambda: os.path.exists(shutdown_secondary), 40, "Secondary SHUTDOWNCMD\n" + mons["secondary"].output())
        wait_for(lambda: os.path.exists(shutdown_primary), 40, "Primary SHUTDOWNCMD\n" + mons["primary"].output())
        self.assertIn(b"FSD", query(port, b"GET VAR sim ups.status\n"))
        self.assertTrue(os.path.exists(os.path.join(confdir, "killpower-primary")))
        notes = open(os.path.join(confdir, "notify-primary")).read()
        self.assertIn("ONBATT sim", notes)
        self.assertIn("LOWBATT sim", notes)
