"""pytest-homelab: verify a software landing in a homelab as one pytest session.

The names in ``__all__`` are the public API: what a repository's own checks and tests may rely
on. They load on first use, so ``import pytest_homelab`` (which every pytest run does, through
the plugin's entry point) stays free of HTTP, Kubernetes and SSH libraries.
"""

__version__ = "0.1.0"

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: typing adds ~5 ms to `homelab --help` (P4)

# name -> the module that defines it
_API = {
    # outcomes: what a check raises, with its JUnit element and exit code
    "HomelabError": "pytest_homelab.core.outcomes",
    "CheckFailed": "pytest_homelab.core.outcomes",
    "BadInput": "pytest_homelab.core.outcomes",
    "AuthError": "pytest_homelab.core.outcomes",
    "InfraError": "pytest_homelab.core.outcomes",
    "NotFound": "pytest_homelab.core.outcomes",
    "DeadlineExceeded": "pytest_homelab.core.outcomes",
    "Blocked": "pytest_homelab.core.outcomes",
    "Superseded": "pytest_homelab.core.outcomes",
    "PrerequisiteFailed": "pytest_homelab.core.outcomes",
    "fold_exit_codes": "pytest_homelab.core.outcomes",
    # settings, deploy.json, secrets, time
    "Settings": "pytest_homelab.core.settings",
    "resolve_settings": "pytest_homelab.core.settings",
    "Manifest": "pytest_homelab.core.manifest",
    "Service": "pytest_homelab.core.manifest",
    "load_manifest": "pytest_homelab.core.manifest",
    "parse_manifest": "pytest_homelab.core.manifest",
    "check_manifest": "pytest_homelab.core.manifest",
    "Secret": "pytest_homelab.core.secrets",
    "Deadline": "pytest_homelab.core.clock",
    "FakeClock": "pytest_homelab.core.clock",
    "Landing": "pytest_homelab.core.landing",
    # each phase's result
    "CiResult": "pytest_homelab.ci.watch",
    "Target": "pytest_homelab.rollout.rules",
    "RolloutResult": "pytest_homelab.rollout.rules",
    "DevRunResult": "pytest_homelab.e2e.phase",
    # reading a landing's JUnit back
    "CheckRecord": "pytest_homelab.report.junit",
    "read_junit": "pytest_homelab.report.junit",
    "exit_code": "pytest_homelab.report.junit",
    # the simulated homelab's entry points
    "WoodpeckerSim": "pytest_homelab.sim.woodpecker",
    "StepSpec": "pytest_homelab.sim.woodpecker",
    "KubeSim": "pytest_homelab.sim.kube",
    "FaultPlan": "pytest_homelab.sim.faults",
    "GitHttpServer": "pytest_homelab.sim.gitserver",
    "ForwardProxy": "pytest_homelab.sim.proxy",
}

__all__ = [
    "AuthError",
    "BadInput",
    "Blocked",
    "CheckFailed",
    "CheckRecord",
    "CiResult",
    "Deadline",
    "DeadlineExceeded",
    "DevRunResult",
    "FakeClock",
    "FaultPlan",
    "ForwardProxy",
    "GitHttpServer",
    "HomelabError",
    "InfraError",
    "KubeSim",
    "Landing",
    "Manifest",
    "NotFound",
    "PrerequisiteFailed",
    "RolloutResult",
    "Secret",
    "Service",
    "Settings",
    "StepSpec",
    "Superseded",
    "Target",
    "WoodpeckerSim",
    "check_manifest",
    "exit_code",
    "fold_exit_codes",
    "load_manifest",
    "parse_manifest",
    "read_junit",
    "resolve_settings",
]

if TYPE_CHECKING:
    from pytest_homelab.ci.watch import CiResult
    from pytest_homelab.core.clock import Deadline, FakeClock
    from pytest_homelab.core.landing import Landing
    from pytest_homelab.core.manifest import (
        Manifest,
        Service,
        check_manifest,
        load_manifest,
        parse_manifest,
    )
    from pytest_homelab.core.outcomes import (
        AuthError,
        BadInput,
        Blocked,
        CheckFailed,
        DeadlineExceeded,
        HomelabError,
        InfraError,
        NotFound,
        PrerequisiteFailed,
        Superseded,
        fold_exit_codes,
    )
    from pytest_homelab.core.secrets import Secret
    from pytest_homelab.core.settings import Settings, resolve_settings
    from pytest_homelab.e2e.phase import DevRunResult
    from pytest_homelab.report.junit import CheckRecord, exit_code, read_junit
    from pytest_homelab.rollout.rules import RolloutResult, Target
    from pytest_homelab.sim.faults import FaultPlan
    from pytest_homelab.sim.gitserver import GitHttpServer
    from pytest_homelab.sim.kube import KubeSim
    from pytest_homelab.sim.proxy import ForwardProxy
    from pytest_homelab.sim.woodpecker import StepSpec, WoodpeckerSim


def __getattr__(name: str) -> object:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_homelab' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once is enough
    return value


def __dir__() -> list[str]:
    return [*globals(), *__all__]
