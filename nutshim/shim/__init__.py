# -*- test-case-name: nutshim.test.test_shim -*-
"""
The STARTTLS shims of RFC 9271 Appendix D, for NUT installations that cannot
be upgraded: C{twistd nut-server-shim} puts TLS on port 401 in front of a
legacy upsd, C{twistd nut-client-shim} gives a legacy upsmon a local port
whose traffic reaches the server shim over TLS.  See docs/shims.md.
"""
