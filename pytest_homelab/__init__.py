"""pytest-homelab: verify a software landing in a homelab as one pytest session."""

__version__ = "0.1.0"
