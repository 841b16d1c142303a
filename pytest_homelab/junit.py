"""Moved; this old import path keeps working for code written against it."""

from pytest_homelab.report.junit import *  # noqa: F403
