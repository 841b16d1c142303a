"""Moved; this old import path keeps working for code written against it."""

from pytest_homelab.core.settings import *  # noqa: F403
