"""Moved; this old import path keeps working for code written against it."""

from pytest_homelab.sim.kube.openapi import *  # noqa: F403
