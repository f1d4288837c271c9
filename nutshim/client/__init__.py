# -*- test-case-name: nutshim.test.test_client -*-
"""
A NUT (RFC 9271) client on Twisted: the protocol, TLS options, connection
helpers and the C{nutshim-client} command line (upsc, upscmd, upsrw).
"""
