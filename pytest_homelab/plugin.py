"""pytest-homelab's pytest plugin: options, markers, hooks and fixtures only.

It loads into every pytest run of the environment (``pytest11`` entry point). A suite that uses
no homelab fixture sees no validation, no git, no network and no required option: everything
below is resolved lazily, on the first item that asks for a homelab fixture.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import sys
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import pytest

from pytest_homelab.core.landing import PHASES, Landing
from pytest_homelab.core.outcomes import BadInput, HomelabError, Terminated, outcome_of
from pytest_homelab.core.settings import OPTIONS, Settings, resolve_settings

if TYPE_CHECKING:  # heavy modules stay out of every pytest run that does not use them
    from pytest_homelab.ci.client import WoodpeckerClient
    from pytest_homelab.ci.models import Repo
    from pytest_homelab.ci.phase import CiTarget
    from pytest_homelab.ci.watch import CiResult
    from pytest_homelab.core.clock import Deadline
    from pytest_homelab.core.manifest import Manifest, Service
    from pytest_homelab.core.secrets import Secret
    from pytest_homelab.core.transport import ClientPool
    from pytest_homelab.e2e.phase import DevRunResult
    from pytest_homelab.e2e.remote import Remote
    from pytest_homelab.report.interrupt import Unfinished
    from pytest_homelab.rollout.kubeclient import KubeApi
    from pytest_homelab.rollout.plan import RolloutPlan
    from pytest_homelab.rollout.rules import RolloutResult, Target
    from pytest_homelab.smoke.phase import ProbeResult, ProbeTarget

_SETTINGS = pytest.StashKey[Settings]()
_LANDING = pytest.StashKey[Landing]()
_PHASE = pytest.StashKey[str]()
_MARKERS = {
    "ci": "landing check of the ci phase: the Woodpecker pipeline of the commit is green",
    "rollout": "landing check of the rollout phase: Deployments run the commit and rolled out",
    "smoke": "landing check of the smoke phase: each service answers with the commit",
    "e2e": "landing check of the dev e2e phase (runs only when asked: -m e2e or --homelab-e2e)",
}
_ROOT_FIXTURE = "homelab_landing"
_INTERRUPTS = "homelab-interrupts"
_MARKED = pytest.StashKey[bool]()
_PACKAGED_SUITE = Path(__file__).resolve().parent / "checks"
_FIXTURE_NAMES = re.compile(
    rb"\bhomelab_(?:settings|landing|ci_target|woodpecker_token|woodpecker|woodpecker_repo|ci|"
    rb"record|service|kube|rollouts|probe|smoke|commit|manifest|services|http|deadline|d601|"
    rb"dev_run)\b"
)
_PLAN = pytest.StashKey["RolloutPlan | BadInput"]()
_TASKRUNS = pytest.StashKey[bytes]()  # the dev e2e runner's junit.xml, merged at the end
_REPORTS = pytest.StashKey["_CheckReports"]()
_SMOKE = pytest.StashKey["tuple[ProbeTarget, ...] | BadInput"]()
_NO_SERVICES = "no-services"
_NO_PROBES = "no-probes"
_NOT_SELECTED = "not-selected"  # the one placeholder of a phase that -m leaves out
_TIMEOUT_MARGIN = 60.0  # pytest-timeout is only a backstop behind our own deadlines
_Report = TypeVar("_Report", pytest.TestReport, pytest.CollectReport)


def _dest(key: str) -> str:
    return f"homelab_{key}"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("homelab", "pytest-homelab landing checks")
    # Help texts are lower-case fragments; the bracket names every other place to set the option.
    for option in OPTIONS:
        where = ", ".join([*(f"env {e}" for e in option.env), f"ini {option.ini}"])
        default = "" if option.default is None else f"; default {_show(option.default)}"
        if option.boolean:
            group.addoption(
                option.flag,
                dest=_dest(option.key),
                action="store_const",
                const="true",
                default=None,
                help=f"{option.help} [{where}]",
            )
            continue
        group.addoption(
            option.flag,
            dest=_dest(option.key),
            default=None,
            metavar=option.metavar,
            help=f"{option.help} [{where}{default}]",
        )
    group.addoption(
        "--homelab-e2e",
        action="store_true",
        default=False,
        help="also run the dev e2e check (it is a manual entry, off by default)",
    )


def _show(value: object) -> str:
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}s"
    return str(value)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.stash[_REPORTS] = reports = _CheckReports()
    config.pluginmanager.register(reports, "homelab-check-reports")
    config.pluginmanager.register(_Interrupts(), _INTERRUPTS)
    if _landing_session(config):
        from pytest_homelab.core.collector import fewer_collections

        config.add_cleanup(fewer_collections())
        _register_phase_markers(config)
        _cache_under_state(config)
        if not config.getoption("collectonly", False):
            _refuse_ungroupable_dist(config, str(config.getoption("dist", "no") or "no"))


def _cache_under_state(config: pytest.Config) -> None:
    """``--lf``/``--ff`` for the landing checks, with pytest's cache under the state directory
    (``$XDG_STATE_HOME/homelab/pytest-cache/<suite>-<hash>``) instead of next to the suite, in
    the user's repo or the installed package; a ``cache_dir`` the user set is kept.

    pytest creates the cache in cacheprovider's tryfirst ``pytest_configure`` from
    ``getini("cache_dir")`` (pytest-dev/pytest src/_pytest/cacheprovider.py@9.2.0:136-142, 563);
    this hook is tryfirst too and registered later, so it runs first."""
    if not config.pluginmanager.hasplugin("cacheprovider") or "TOX_ENV_DIR" in os.environ:
        return
    if config.getini("cache_dir") != ".pytest_cache":
        return
    inicache = getattr(config, "_inicache", None)
    if not isinstance(inicache, dict):
        return
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    root = config.rootpath
    digest = hashlib.sha256(str(root).encode()).hexdigest()[:12]
    inicache["cache_dir"] = str(Path(state) / "homelab" / "pytest-cache" / f"{root.name}-{digest}")


def _register_phase_markers(config: pytest.Config) -> None:
    """The phase markers, where landing checks are collected; a marker of the same name the
    project registered itself keeps its description."""
    if config.stash.get(_MARKED, False):
        return
    config.stash[_MARKED] = True
    known = {line.split(":")[0].split("(")[0].strip() for line in config.getini("markers")}
    for name, text in _MARKERS.items():
        if name not in known:
            config.addinivalue_line("markers", f"{name}: {text}")


class _Interrupts:
    """What a Ctrl-C or SIGTERM left unfinished: which test was running, which never started.

    pytest calls ``pytest_keyboard_interrupt`` for a real interrupt and for its own
    ``Session.Interrupted`` (collection errors, ``--stepwise``); only the first counts here."""

    def __init__(self) -> None:
        self.signal: str | None = None
        self.started: dict[str, float] = {}
        self.finished: set[str] = set()
        self.decided: set[str] = set()  # a setup error or the call's own report was logged

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        value = excinfo.value
        if isinstance(value, KeyboardInterrupt) and not isinstance(
            value, pytest.Session.Interrupted
        ):
            self.signal = "SIGTERM" if isinstance(value, Terminated) else "SIGINT"

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        import time

        self.started[nodeid] = time.monotonic()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" or (report.when == "setup" and not report.passed):
            self.decided.add(report.nodeid)

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        self.finished.add(nodeid)


def _trap_sigterm(config: pytest.Config) -> None:
    """During a landing session SIGTERM unwinds like Ctrl-C (pytest writes the JUnit, which
    then says what was interrupted), unless someone else already handles SIGTERM."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def terminate(signum: int, frame: object) -> None:
        raise Terminated()

    def restore() -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    signal.signal(signal.SIGTERM, terminate)
    config.add_cleanup(restore)


def _landing_session(config: pytest.Config) -> bool:
    """An initial path of the session is a landing suite: the shipped ``checks/``, or a
    ``checks/`` directory at the top of a git work tree (the suite the CLI runs)."""
    return any(_in_landing_suite(path) for path in _initial_paths(config))


def _initial_paths(config: pytest.Config) -> Iterator[Path]:
    base = config.invocation_params.dir
    for arg in config.args:
        name = str(arg).split("::", 1)[0]
        if config.option.pyargs and "/" not in name and not name.endswith(".py"):
            with contextlib.suppress(ImportError, ValueError):
                import importlib.util

                spec = importlib.util.find_spec(name)
                if spec is not None and spec.submodule_search_locations:
                    yield from (Path(p) for p in spec.submodule_search_locations)
                elif spec is not None and spec.origin:
                    yield Path(spec.origin)
            continue
        yield base / name


def _in_landing_suite(path: Path) -> bool:
    try:
        path = path.resolve()
    except OSError:
        return False
    for directory in (path, *path.parents):
        if directory == _PACKAGED_SUITE:
            return True
        if directory.name == "checks" and (directory.parent / ".git").exists():
            return True
    return False


def pytest_pycollect_makemodule(module_path: Path, parent: pytest.Collector) -> None:
    """A test module that asks for a homelab fixture is a landing check module: the phase
    markers are registered before it is imported (so ``--strict-markers`` accepts them)."""
    config = parent.config
    if config.stash.get(_MARKED, False):
        return
    try:
        source = module_path.read_bytes()
    except OSError:
        return
    if _is_check_module(source):
        _register_phase_markers(config)


def _is_check_module(source: bytes) -> bool:
    """Whether a test module's functions ask for a homelab fixture (as a parameter or through
    ``usefixtures``): a landing check module. Names in strings (pytester sources) do not count."""
    if not _FIXTURE_NAMES.search(source):
        return False
    import ast

    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            args = node.args
            names = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
            if any(_FIXTURE_NAMES.fullmatch(n.encode()) for n in names):
                return True
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "usefixtures":
            for arg in node.args:
                value = arg.value if isinstance(arg, ast.Constant) else None
                if isinstance(value, str) and _FIXTURE_NAMES.fullmatch(value.encode()):
                    return True
    return False


def _resolve(config: pytest.Config) -> Settings:
    """Resolve the settings once; BadInput when they are wrong."""
    if _SETTINGS not in config.stash:
        flags = {o.key: config.getoption(_dest(o.key)) for o in OPTIONS}
        config.stash[_SETTINGS] = resolve_settings(
            flags, cwd=config.invocation_params.dir, repo_flags=_flags_from_ini(config)
        )
    return config.stash[_SETTINGS]


def _flags_from_ini(config: pytest.Config) -> dict[str, str]:
    """Options given in the ini file's ``addopts`` (the repository's file, not the user): the
    settings refuse those that decide where credentials go unless the user trusts the repo."""
    where = f"addopts in {config.inipath}" if config.inipath else "addopts"
    given = {str(arg).split("=", 1)[0] for arg in config.getini("addopts")}
    return {o.key: where for o in OPTIONS if o.user_only and o.flag in given}


def _settings(config: pytest.Config) -> Settings:
    try:
        return _resolve(config)
    except BadInput as exc:
        raise pytest.UsageError(exc.render()) from None


def _phase_of(item: pytest.Item) -> str | None:
    if _ROOT_FIXTURE not in getattr(item, "fixturenames", ()):
        return None
    for phase in PHASES:
        if item.get_closest_marker(phase) is not None:
            return phase
    return None


def _rollout_plan(config: pytest.Config) -> RolloutPlan | BadInput:
    """The rollout phase's plan, computed once; a configuration problem becomes a value that
    the ``homelab_service`` fixture raises, so each check reports it as an error."""
    if _PLAN not in config.stash:
        from pytest_homelab.rollout.plan import rollout_plan

        try:
            config.stash[_PLAN] = rollout_plan(_resolve(config))
        except BadInput as exc:
            config.stash[_PLAN] = exc
    return config.stash[_PLAN]


def _smoke_plan(config: pytest.Config) -> tuple[ProbeTarget, ...] | BadInput:
    """The smoke phase's probes, computed once (a problem becomes each check's error)."""
    if _SMOKE not in config.stash:
        from pytest_homelab.smoke.phase import smoke_plan

        try:
            config.stash[_SMOKE] = smoke_plan(_resolve(config))
        except BadInput as exc:
            config.stash[_SMOKE] = exc
    return config.stash[_SMOKE]


def _env_settings(config: pytest.Config) -> Settings:
    """The settings with the environment's own table applied (the named or the only one)."""
    settings = _settings(config)
    plan = config.stash.get(_PLAN, None)
    env = settings.env
    if env is None and plan is not None and not isinstance(plan, BadInput):
        env = plan.environment
    return settings.for_env(env) if env else settings


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    planned = {"homelab_probe", "homelab_service"} & set(metafunc.fixturenames)
    if planned and _left_out_by_markexpr(metafunc):
        # `pytest checks/ -m ci`: the smoke and rollout checks are deselected whatever their
        # parameters, so their plans (deploy.json read and validated) are not made.
        for name in sorted(planned):
            metafunc.parametrize(name, [None], ids=[_NOT_SELECTED], indirect=True)
        return
    if "homelab_probe" in metafunc.fixturenames and metafunc.config.getoption("collectonly"):
        _list_probes(metafunc)
    elif "homelab_probe" in metafunc.fixturenames:
        probes = _smoke_plan(metafunc.config)
        if isinstance(probes, BadInput):
            metafunc.parametrize("homelab_probe", [probes], ids=["configuration"], indirect=True)
        elif not probes:
            metafunc.parametrize("homelab_probe", [None], ids=[_NO_PROBES], indirect=True)
        else:
            ids = [p.service for p in probes]
            metafunc.parametrize("homelab_probe", list(probes), ids=ids, indirect=True)
    if "homelab_service" not in metafunc.fixturenames:
        return
    if metafunc.config.getoption("collectonly"):
        _list_services(metafunc)
        return
    plan = _rollout_plan(metafunc.config)
    if isinstance(plan, BadInput):
        metafunc.parametrize("homelab_service", [plan], ids=["configuration"], indirect=True)
    elif not plan.targets:
        metafunc.parametrize("homelab_service", [None], ids=[_NO_SERVICES], indirect=True)
    else:
        targets = list(plan.targets)
        metafunc.parametrize(
            "homelab_service", targets, ids=[t.name for t in targets], indirect=True
        )


def _left_out_by_markexpr(metafunc: pytest.Metafunc) -> bool:
    """Whether ``-m`` deselects this function whatever its parameters: true only for an
    expression of marker names, ``and``, ``or``, ``not`` and parentheses that is false for the
    function's markers (anything else, such as a marker with arguments, counts as selected)."""
    expression = str(metafunc.config.getoption("markexpr", "") or "").strip()
    if not expression:
        return False
    import ast

    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError:
        return False
    marks = {m.name for m in metafunc.definition.iter_markers()}

    def value(node: ast.AST) -> bool | None:
        if isinstance(node, ast.Name):
            return node.id in marks
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            inner = value(node.operand)
            return None if inner is None else not inner
        if isinstance(node, ast.BoolOp):
            values = [value(v) for v in node.values]
            if any(v is None for v in values):
                return None
            return all(values) if isinstance(node.op, ast.And) else any(values)
        return None  # a call, a constant, an attribute: not a plain marker expression

    return value(tree.body) is False


def _list_probes(metafunc: pytest.Metafunc) -> None:
    """``--collect-only``: the smoke checks of the services with a probe, like
    :func:`_list_services` (no commit is resolved)."""
    from pytest_homelab.rollout.plan import listed_services
    from pytest_homelab.smoke.phase import ProbeTarget

    try:
        settings = _resolve(metafunc.config)
        services = (
            []
            if not settings.deploy_json_path.exists() and settings.targets
            else (listed_services(settings))
        )
    except BadInput as exc:
        metafunc.parametrize("homelab_probe", [exc], ids=["configuration"], indirect=True)
        return
    probes = [ProbeTarget(s.name, s.probe, "") for s in services if s.probe is not None]
    if not probes:
        metafunc.parametrize("homelab_probe", [None], ids=[_NO_PROBES], indirect=True)
        return
    ids = [p.service for p in probes]
    metafunc.parametrize("homelab_probe", probes, ids=ids, indirect=True)


def _list_services(metafunc: pytest.Metafunc) -> None:
    """``--collect-only``: the real rollout checks, from deploy.json alone (no git, network or
    credentials); a broken configuration lists one ``configuration`` check, as a run reports it."""
    from pytest_homelab.rollout.plan import listed_targets

    try:
        targets = list(listed_targets(_resolve(metafunc.config)))
    except BadInput as exc:
        metafunc.parametrize("homelab_service", [exc], ids=["configuration"], indirect=True)
        return
    if not targets:
        metafunc.parametrize("homelab_service", [None], ids=[_NO_SERVICES], indirect=True)
        return
    ids = [t.name for t in targets]
    metafunc.parametrize("homelab_service", targets, ids=ids, indirect=True)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    plan = terminalreporter.config.stash.get(_PLAN, None)
    if plan is not None and not isinstance(plan, BadInput) and not plan.targets:
        terminalreporter.write_line(
            f"homelab: environment {plan.environment} has no services, so there are no "
            "rollout checks"
        )


def _param_id(item: pytest.Item) -> str | None:
    spec = getattr(item, "callspec", None)
    return None if spec is None else str(spec.id)


def _e2e_requested(config: pytest.Config) -> bool:
    markexpr = str(config.getoption("markexpr", "") or "")
    return bool(config.getoption("homelab_e2e")) or "e2e" in markexpr.replace("(", " ").split()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    phased = {id(item): phase for item in items if (phase := _phase_of(item)) is not None}
    if not phased:
        return
    deselected = [i for i in items if phased.get(id(i)) == "e2e" and not _e2e_requested(config)]
    deselected += [i for i in items if _param_id(i) in (_NO_SERVICES, _NO_PROBES)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [i for i in items if i not in deselected]
    # Order by phase within the slots the checks occupy; other tests keep their places.
    order = {phase: n for n, phase in enumerate(PHASES)}
    slots = [n for n, item in enumerate(items) if id(item) in phased]
    checks = sorted((items[n] for n in slots), key=lambda i: order[phased[id(i)]])
    for n, item in zip(slots, checks, strict=True):
        items[n] = item
    selected = {phased[id(i)] for i in items if id(i) in phased}
    if not selected or config.getoption("collectonly"):
        return  # listing the checks needs no settings; running them does
    _trap_sigterm(config)
    settings = _settings(config)
    if "ci" in selected:
        try:
            settings.require("woodpecker_server", "the ci check")
        except BadInput as exc:
            raise pytest.UsageError(exc.render()) from None
    plan = config.stash.get(_PLAN, None)
    if "rollout" in selected and isinstance(plan, BadInput):
        # deploy.json, the environment or the commit is wrong: nothing could be checked.
        raise pytest.UsageError(plan.render())
    probes = config.stash.get(_SMOKE, None)
    if "smoke" in selected and isinstance(probes, BadInput):
        raise pytest.UsageError(probes.render())
    backstop = settings.landing_budget + _TIMEOUT_MARGIN
    with_timeout = config.pluginmanager.hasplugin("timeout")
    for item in items:
        if id(item) in phased:
            item.stash[_PHASE] = phased[id(item)]
            item.user_properties.append(("phase", phased[id(item)]))
            if with_timeout and item.get_closest_marker("timeout") is None:
                item.add_marker(pytest.mark.timeout(backstop))


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """A check whose earlier phase failed fails at once, naming the root cause, without waiting."""
    phase = pyfuncitem.stash.get(_PHASE, None)
    landing = pyfuncitem.config.stash.get(_LANDING, None)
    if phase is not None and landing is not None:
        key = _param_id(pyfuncitem) if phase == "smoke" else None
        blocked = landing.prerequisite_failure(phase, key)
        if blocked is not None:
            raise blocked
    return None


# -- pytest-xdist: every landing check on one worker ------------------------------------------
# The phases gate each other through the session's Landing (a red ci fails the rollout checks at
# once) and each phase's watch is a session fixture: split over workers, each would watch on its
# own and wait for phases it cannot see. So the controller's scheduler puts every landing check
# module (one that asks for a homelab fixture, as for the markers) into one scope, which
# pytest-xdist sends to one worker whole and in collection order
# (pytest-xdist src/xdist/scheduler/loadscope.py@v3.8.0 LoadScopeScheduling._split_scope);
# other tests keep their --dist mode. No nodeid changes: the terminal, the JUnit and --lf see the
# serial names. (xdist_group cannot do it: its "@group" suffix is written to Item._nodeid,
# xdist/remote.py@v3.8.0:236-254, which pytest 9.2 no longer reads, nodes.py:290-292.)

XDIST_GROUP = "homelab-landing"
_UNGROUPABLE = ("each", "worksteal")


def _refuse_ungroupable_dist(config: pytest.Config, dist: str) -> None:
    if dist in _UNGROUPABLE:
        raise pytest.UsageError(
            f"the landing checks cannot run with --dist {dist}: their phases gate each other "
            "and each phase's watch must run once, on one worker\n"
            "  next: use -n N with --dist load (the default), loadgroup, loadscope or loadfile "
            "(the checks then run together on one worker), or run without -n"
        )


def _check_module_ids(config: pytest.Config) -> Callable[[str], bool]:
    """Whether a nodeid's module is a landing check module (read once per file)."""
    seen: dict[str, bool] = {}

    def is_check(nodeid: str) -> bool:
        module = nodeid.split("::", 1)[0]
        if module not in seen:
            try:
                source = (config.rootpath / module).read_bytes()
            except OSError:
                source = b""
            seen[module] = _is_check_module(source)
        return seen[module]

    return is_check


@pytest.hookimpl(optionalhook=True, tryfirst=True)  # xdist's own is trylast (dsession.py:107)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """The scheduler of the chosen ``--dist`` mode, with the landing check modules as one scope."""
    from xdist.scheduler import LoadFileScheduling, LoadGroupScheduling, LoadScopeScheduling

    dist = config.getvalue("dist")
    bases = {
        "load": LoadScopeScheduling,
        "loadscope": LoadScopeScheduling,
        "loadfile": LoadFileScheduling,
        "loadgroup": LoadGroupScheduling,
    }
    base = bases.get(dist)
    if base is None:
        return None  # each and worksteal are refused once a check module is collected
    is_check = _check_module_ids(config)
    per_test = dist == "load"

    class Grouped(base):  # type: ignore[misc,valid-type]
        def _split_scope(self, nodeid: str) -> str:
            if is_check(nodeid):
                return XDIST_GROUP
            return nodeid if per_test else str(super()._split_scope(nodeid))

    scheduler: object = Grouped(config, log)
    return scheduler


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: object, ids: list[str]) -> None:
    config = getattr(node, "config", None)
    if not isinstance(config, pytest.Config):
        return
    dist = str(config.getvalue("dist"))
    if dist in _UNGROUPABLE and any(map(_check_module_ids(config), ids)):
        _refuse_ungroupable_dist(config, dist)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    phase = item.stash.get(_PHASE, None)
    if phase is None:
        return _scrubbed(report)
    if report.failed and call.when in ("setup", "call"):
        exc = call.excinfo.value if call.excinfo is not None else None
        outcome = outcome_of(exc) if isinstance(exc, HomelabError) else type(exc).__name__
        item.user_properties.append(("outcome", outcome))
        if isinstance(exc, HomelabError):
            # The message says expected, seen and next step; a traceback would only bury it.
            report.longrepr = f"{outcome}: {exc.render()}"
        landing = item.config.stash.get(_LANDING, None)
        if landing is not None:
            landing.record_failure(phase, item.name, _param_id(item))
    elif (
        report.passed
        and call.when == "call"
        and not any(name == "outcome" for name, _ in item.user_properties)
    ):
        item.user_properties.append(("outcome", "success"))
    if call.when == "call" and _TASKRUNS in item.config.stash:
        # The runner's junit.xml travels with the check's report (to the xdist controller too)
        # and becomes the TaskRuns suite when the JUnit is annotated.
        from pytest_homelab.report.annotate import TASKRUNS_PROPERTY

        taskruns = item.config.stash[_TASKRUNS].decode("utf-8", "replace")
        del item.config.stash[_TASKRUNS]
        item.user_properties.append((TASKRUNS_PROPERTY, taskruns))
    return _scrubbed(report)


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    return _scrubbed((yield))


def _scrubbed(report: _Report) -> _Report:
    """The report with every known secret scrubbed from what the terminal and JUnit show: the
    failure text (tracebacks, ``-l`` locals, assertion details), captured output and logs, and
    the recorded properties. The last net: secrets are kept out of these by construction."""
    from pytest_homelab.core.secrets import known_secrets, scrub

    if not known_secrets():
        return report
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):  # a skip: (path, line, reason)
        report.longrepr = (longrepr[0], longrepr[1], scrub(longrepr[2]))
    elif longrepr is not None:
        text = report.longreprtext
        clean = scrub(text)
        if clean != text:
            report.longrepr = clean
    report.sections = [(title, scrub(content)) for title, content in report.sections]
    if isinstance(report, pytest.TestReport):
        report.user_properties = [
            (name, scrub(value) if isinstance(value, str) else value)
            for name, value in report.user_properties
        ]
    return report


class _CheckReports:
    """Notices that a landing check reported (serially, or on the xdist controller)."""

    def __init__(self) -> None:
        self.seen = False

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not self.seen and any(name == "phase" for name, _ in report.user_properties):
            self.seen = True


def _ran_checks(config: pytest.Config) -> bool:
    reports = config.stash.get(_REPORTS, None)
    return reports is not None and reports.seen


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Rewrite the JUnit of a session that ran landing checks (on the xdist controller, which
    alone writes it): schema-valid, typed by outcome, with the evidence and the TaskRuns; and
    of any session that knew a secret, scrubbed."""
    from pytest_homelab.core.secrets import known_secrets

    config = session.config
    if _landing_session(config):
        # `pytest checks/` exits as `homelab` does: no garbage collection of everything the
        # session leaves behind once the verdict is out (60 ms and more at interpreter exit).
        from pytest_homelab.report.session import exit_without_collecting

        exit_without_collecting()
    xmlpath = config.option.xmlpath
    if not xmlpath or hasattr(config, "workerinput"):
        return
    path = Path(xmlpath)
    watch = session.config.pluginmanager.get_plugin(_INTERRUPTS)
    # Checks were collected (an interrupt may come before any of them reported).
    collected = any(_PHASE in item.stash for item in getattr(session, "items", ()))
    ran = _ran_checks(config) or collected
    if path.is_file() and ran and isinstance(watch, _Interrupts) and watch.signal is not None:
        from pytest_homelab.report.interrupt import mark_interrupted

        mark_interrupted(path, watch.signal, _unfinished(session, watch))
    if path.is_file() and (ran or known_secrets()):
        from pytest_homelab.report.annotate import annotate_junit

        _release_written_junit(config)
        annotate_junit(path)


def _release_written_junit(config: pytest.Config) -> None:
    """Let go of pytest's JUnit elements once its plugin wrote them (its sessionfinish ran
    before this trylast one): it keeps every testcase until the session unconfigures
    (_pytest/junitxml.py, pytest 9.2, LogXML.node_reporters_ordered), and the annotation parses
    the file into a tree of its own meanwhile: 5 MB more at the peak at 1000 checks."""
    from _pytest.junitxml import xml_key

    xml = config.stash.get(xml_key, None)
    for name in ("node_reporters", "node_reporters_ordered"):
        written = getattr(xml, name, None)
        if isinstance(written, (dict, list)):
            written.clear()


def _unfinished(session: pytest.Session, watch: _Interrupts) -> list[Unfinished]:
    """The running test (unless its outcome was already logged) and every test not started."""
    import time

    from _pytest.junitxml import mangle_test_address, xml_key

    from pytest_homelab.report.interrupt import Unfinished

    xml = session.config.stash.get(xml_key, None)
    prefix = getattr(xml, "prefix", None)
    now = time.monotonic()
    landing = session.config.stash.get(_LANDING, None)
    unfinished = []
    for item in session.items:
        nodeid = item.nodeid
        if nodeid in watch.finished or nodeid in watch.decided:
            continue
        names = mangle_test_address(nodeid)
        classnames = names[:-1]
        if prefix:
            classnames.insert(0, prefix)
        started = watch.started.get(nodeid)
        properties = [(str(k), str(v)) for k, v in item.user_properties]
        if started is not None and landing is not None and landing.dispatched:
            properties.append(("run_id", landing.dispatched[-1]))  # it keeps running on D601
        unfinished.append(
            Unfinished(
                classname=".".join(classnames),
                name=names[-1],
                running=started is not None,
                seconds=0.0 if started is None else now - started,
                properties=properties,
            )
        )
    return unfinished


# -- fixtures ------------------------------------------------------------------------------------


def _progress_writer(config: pytest.Config) -> Callable[[str], None]:
    capman = config.pluginmanager.getplugin("capturemanager")

    def write(line: str) -> None:
        context = capman.global_and_fixture_disabled() if capman else contextlib.nullcontext()
        with context:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()

    return write


@pytest.fixture(scope="session")
def homelab_settings(pytestconfig: pytest.Config) -> Settings:
    """The resolved homelab settings (flag > env > [tool.homelab] > default)."""
    return _settings(pytestconfig)


@pytest.fixture(scope="session")
def homelab_landing(pytestconfig: pytest.Config, homelab_settings: Settings) -> Landing:
    """The landing session: overall deadline, phase budgets, progress, failed phases."""
    if _LANDING not in pytestconfig.stash:
        pytestconfig.stash[_LANDING] = Landing(
            _env_settings(pytestconfig), progress=_progress_writer(pytestconfig)
        )
    return pytestconfig.stash[_LANDING]


@pytest.fixture(scope="session")
def homelab_ci_target(homelab_settings: Settings) -> CiTarget:
    """The Woodpecker repo OWNER/NAME and the full sha of the commit under test."""
    from pytest_homelab.ci.phase import resolve_target

    return resolve_target(homelab_settings)


@pytest.fixture(scope="session")
def homelab_woodpecker_token(homelab_settings: Settings) -> Secret:
    """The Woodpecker API token (from WOODPECKER_TOKEN or Vault); it never prints."""
    from pytest_homelab.ci.phase import woodpecker_token as resolve

    return resolve(homelab_settings)


@pytest.fixture(scope="session")
def homelab_woodpecker(
    homelab_landing: Landing, homelab_woodpecker_token: Secret
) -> Iterator[WoodpeckerClient]:
    """A Woodpecker API client built from the settings (dialing, CA, retries)."""
    from pytest_homelab.ci.phase import open_client

    client = open_client(
        homelab_landing.settings,
        homelab_woodpecker_token,
        clock=homelab_landing.clock,
        on_retry=lambda text: homelab_landing.progress(f"ci: retry {text}"),
    )
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def homelab_woodpecker_repo(
    homelab_woodpecker: WoodpeckerClient, homelab_ci_target: CiTarget, homelab_landing: Landing
) -> Repo:
    """The Woodpecker repo of the landing (looked up once)."""
    return homelab_woodpecker.lookup_repo(
        homelab_ci_target.slug, deadline=homelab_landing.phase_deadline("ci")
    )


@pytest.fixture(scope="session")
def homelab_ci(
    homelab_landing: Landing,
    homelab_woodpecker: WoodpeckerClient,
    homelab_woodpecker_repo: Repo,
    homelab_ci_target: CiTarget,
    homelab_woodpecker_token: Secret,
) -> CiResult:
    """The ci phase's result: the watch of the commit's pipeline, run once per session."""
    from pytest_homelab.ci.phase import watch_ci

    return watch_ci(
        homelab_landing.settings,
        homelab_woodpecker,
        homelab_woodpecker_repo,
        homelab_ci_target,
        deadline=homelab_landing.phase_deadline("ci"),
        token=homelab_woodpecker_token,
        progress=homelab_landing.progress,
        clock=homelab_landing.clock,
    )


@pytest.fixture
def homelab_record(request: pytest.FixtureRequest) -> Callable[[Iterable[tuple[str, str]]], None]:
    """Attach (name, value) properties to this check's JUnit testcase."""

    def record(properties: Iterable[tuple[str, str]]) -> None:
        request.node.user_properties.extend((str(k), str(v)) for k, v in properties)

    return record


@pytest.fixture
def homelab_service(request: pytest.FixtureRequest, homelab_landing: Landing) -> Target | None:
    """One service of the environment (or an NS/NAME target) and the sha its image must carry."""
    param = request.param
    if isinstance(param, BaseException):
        if homelab_landing.prerequisite_failure("rollout") is not None:
            return None  # an earlier phase failed: the check fails naming it, not this
        raise param
    return param  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def homelab_kube(homelab_landing: Landing) -> Iterator[object]:
    """The official Kubernetes ``ApiClient`` from --kubeconfig/KUBECONFIG/~/.kube/config or the
    in-cluster config, for a repository's own checks (the rollout watch has a lighter client
    of its own and does not load this one)."""
    from kubernetes.client import ApiClient

    api = _kube_api(homelab_landing)
    client = ApiClient(api.configuration)
    try:
        yield client
    finally:
        client.close()  # type: ignore[no-untyped-call]
        api.close()


def _kube_api(landing: Landing) -> KubeApi:
    from pytest_homelab.rollout.tracker import connect

    settings = landing.settings
    return connect(
        kubeconfig=settings.kubeconfig, context=settings.kube_context, environ=settings.environ
    )


@pytest.fixture(scope="session")
def homelab_rollouts(
    pytestconfig: pytest.Config, homelab_landing: Landing
) -> Iterator[Mapping[str, RolloutResult]]:
    """The rollout phase's results: every target watched at once by one watch; each result is
    ready as soon as its target is decided (reading it waits for that target only)."""
    if homelab_landing.prerequisite_failure("rollout") is not None:
        yield {}  # the checks fail at once, naming the failed phase
        return
    plan = _rollout_plan(pytestconfig)
    if isinstance(plan, BadInput):
        raise plan
    from pytest_homelab.rollout.rules import RolloutPolicy
    from pytest_homelab.rollout.tracker import RolloutResults, RolloutTracker

    client = _kube_api(homelab_landing)  # only now: a red CI never needs kube
    settings = homelab_landing.settings
    tracker = RolloutTracker(
        client,
        plan.targets,
        progress=homelab_landing.progress,
        clock=homelab_landing.clock,
        request_timeout=settings.request_timeout,
        policy=RolloutPolicy(
            crash_restarts=settings.rollout_crash_restarts,
            image_pull_grace=settings.rollout_image_pull_grace,
            strict_terminating=settings.rollout_strict_terminating,
        ),
    )
    try:
        tracker.start(homelab_landing.phase_deadline("rollout"))
        yield RolloutResults(tracker)
    finally:
        tracker.close()
        client.close()


@pytest.fixture
def homelab_probe(request: pytest.FixtureRequest, homelab_landing: Landing) -> ProbeTarget | None:
    """One service's probe (parametrized: one smoke check per service with a probe)."""
    param = request.param
    if isinstance(param, BaseException):
        if homelab_landing.prerequisite_failure("smoke") is not None:
            return None
        raise param
    return param  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def homelab_smoke(pytestconfig: pytest.Config, homelab_landing: Landing) -> dict[str, ProbeResult]:
    """The smoke phase's results: every probe polled at once, waited for once. Services whose
    rollout failed (or all, when the ci phase failed) are not polled: their checks fail naming
    that."""
    probes = _smoke_plan(pytestconfig)
    if isinstance(probes, BadInput):
        raise probes
    wanted = [p for p in probes if homelab_landing.prerequisite_failure("smoke", p.service) is None]
    if not wanted:
        return {}
    from pytest_homelab.smoke.phase import http_fetch, wait_for_probes

    settings = homelab_landing.settings
    return wait_for_probes(
        wanted,
        lambda probe: http_fetch(
            probe, ca_bundle=settings.ca_bundle, timeout=settings.request_timeout
        ),
        deadline=homelab_landing.phase_deadline("smoke"),
        clock=homelab_landing.clock,
        interval=settings.probe_interval,
        progress=homelab_landing.progress,
    )


# -- public fixtures for a repository's own checks (docs/own-checks.md) -------------------------


@pytest.fixture(scope="session")
def homelab_commit(homelab_landing: Landing) -> str:
    """The full sha of the commit under test."""
    from pytest_homelab.core.landing import commit_under_test

    return commit_under_test(homelab_landing.settings).sha


@pytest.fixture(scope="session")
def homelab_manifest(homelab_landing: Landing) -> Manifest:
    """deploy.json, validated (the file the rollout phase reads)."""
    from pytest_homelab.core.manifest import load_manifest

    return load_manifest(homelab_landing.settings.deploy_json_path)


@pytest.fixture(scope="session")
def homelab_services(homelab_landing: Landing, homelab_manifest: Manifest) -> tuple[Service, ...]:
    """The services of the landing's environment (the named one, or the only one)."""
    return homelab_manifest.environment(homelab_landing.settings.env).services


@pytest.fixture(scope="session")
def homelab_http(homelab_landing: Landing) -> Iterator[ClientPool]:
    """``homelab_http(url, dial=None)``: an httpx client with the settings' CA bundle and request
    timeout, the LB dialer when ``dial`` is given, and no credentials."""
    from pytest_homelab.core.transport import ClientPool

    settings = homelab_landing.settings
    pool = ClientPool(ca_bundle=settings.ca_bundle, timeout=settings.request_timeout)
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture
def homelab_deadline(homelab_landing: Landing) -> Deadline:
    """The landing's overall deadline: ``.remaining()`` seconds are left for this check."""
    return homelab_landing.deadline


@pytest.fixture(scope="session")
def homelab_d601(homelab_landing: Landing) -> Iterator[Remote]:
    """The transport to the CI host D601 (ssh, or local on D601 itself); one connection."""
    from pytest_homelab.e2e.phase import open_d601

    remote = open_d601(homelab_landing.settings)
    try:
        yield remote
    finally:
        remote.close()


@pytest.fixture(scope="session")
def homelab_dev_run(
    request: pytest.FixtureRequest, pytestconfig: pytest.Config, homelab_landing: Landing
) -> DevRunResult | None:
    """The dev e2e run on D601: planned from the remote branch's deploy.json, dispatched, and
    (with --homelab-e2e-wait) waited for."""
    if homelab_landing.prerequisite_failure("e2e") is not None:
        return None  # the check fails at once, naming the failed phase
    from pytest_homelab.e2e.phase import run_dev_e2e

    result, taskruns = run_dev_e2e(homelab_landing, lambda: request.getfixturevalue("homelab_d601"))
    if taskruns:
        pytestconfig.stash[_TASKRUNS] = taskruns
    return result
