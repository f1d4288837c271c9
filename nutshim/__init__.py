"""
nutshim: the Network UPS Tools protocol (RFC 9271) on Twisted.

Packages hold no code beyond the version: see the sub-packages.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
