"""
nut-upsd's read-only HTTP side: Prometheus metrics, a JSON view and a
status page, all answered from the daemon's memory.

nut-upsd already holds every UPS's variables (the driver socket mirrors
them into L{nutshim.state.DeviceState}), so it can be its own exporter: a
scrape reads that memory, never a driver, and costs no NUT connection.
The renderers (L{nutexporter}, L{exposition}, L{jsonview}, L{page},
L{status}, L{snapshot}) do no I/O and know no reactor: they turn the
daemon's memory into bytes, and the tests drive them directly.
L{resources} is the twisted.web glue, L{service} the listeners,
L{history} the charts' sampler (on an injected clock), L{daemon} what
nut-upsd wires in.  docs/metrics.md has the metric names and the JSON
schema.
"""
