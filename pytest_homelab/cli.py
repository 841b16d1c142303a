"""The ``homelab`` command. Thin: flags, settings, then a pytest session or one lookup.

Heavy imports (pytest, httpx, kubernetes, paramiko, hvac) happen inside the verbs that need them,
so ``homelab --help`` starts fast.
"""

from __future__ import annotations

import argparse
import sys

from pytest_homelab.core.collector import fewer_collections
from pytest_homelab.core.options import OPTIONS_BY_KEY
from pytest_homelab.core.outcomes import (
    EXIT_BAD_INPUT,
    EXIT_DEADLINE,
    EXIT_FAILED,
    EXIT_NOT_FOUND,
    EXIT_STILL_RUNNING,
    EXIT_SUCCESS,
    SIGNAL_EXIT_CODES,
    VERDICTS,
    BadInput,
    HomelabError,
    Terminated,
    outcome_of,
)

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: typing adds ~5 ms to `homelab --help` (P4)
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path
    from typing import Any, Never

    from pytest_homelab.core.settings import Settings

    Handler = Callable[[argparse.Namespace], int]

EXIT_CODES = f"""exit codes (every verb):
  {EXIT_SUCCESS}    success: every check passed
  {EXIT_FAILED}    a check failed (red pipeline, superseded, prerequisite failed)
  {EXIT_BAD_INPUT}    bad input, configuration, auth or unreachable infrastructure
  {EXIT_NOT_FOUND}    not found (no pipeline for the commit within the appear grace; a workload
       that does not exist; an unknown dev e2e run)
  {EXIT_DEADLINE}  deadline exceeded (also: still blocked on approval)
  130  interrupted by Ctrl-C (SIGINT); 143 by SIGTERM: nothing unfinished passed
  several outcomes fold as 143 > 130 > 2 > 1 > 124 > 3 > 0.
  lookups: `ci status` 0 green, 1 red, 3 no pipeline, {EXIT_STILL_RUNNING} still running;
  `ci logs` 0 passed, 1 failed, 3 unknown run, {EXIT_STILL_RUNNING} still running."""


def _add_options(
    parser: argparse.ArgumentParser | Any,
    keys: Sequence[str],
    rename: dict[str, str] | None = None,
) -> None:
    """Add the options' CLI flags; ``rename`` gives a verb its own name for one of them."""
    for key in keys:
        option = OPTIONS_BY_KEY[key]
        flag = (rename or {}).get(key) or option.cli or option.flag
        if option.boolean:
            parser.add_argument(
                flag,
                dest=key,
                action="store_const",
                const="true",
                default=None,
                help=option.help,
            )
            continue
        parser.add_argument(
            flag,
            dest=key,
            default=None,
            metavar=option.metavar,
            help=f"{option.help} (env {', '.join(option.env)})" if option.env else option.help,
        )


_CI_CONNECTION = (
    "deploy_json",
    "woodpecker_server",
    "woodpecker_dial",
    "ca_bundle",
    "woodpecker_repo",
    "remote",
    "ci_events",
    "ci_branch",
    "ci_pages",
    "request_timeout",
    "vault_mount",
    "vault_path",
    "vault_field",
)
_CI_WAIT = ("ci_timeout", "appear_grace", "ci_poll_interval", "ci_stream_recheck")
_D601 = (
    "d601_transport",
    "d601_host",
    "d601_port",
    "d601_user",
    "d601_key",
    "d601_known_hosts",
    "e2e_result_root",
)
_ROLLOUT = (
    "deploy_json",
    "env",
    "rollout_timeout",
    "rollout_crash_restarts",
    "rollout_image_pull_grace",
    "rollout_strict_terminating",
    "kubeconfig",
    "kube_context",
    "namespace",
    "request_timeout",
    "ca_bundle",
    "probe_interval",
)

# every option but the commit and explicit targets; the two budgets keep their own names
_ALL = tuple(key for key in OPTIONS_BY_KEY if key not in ("commit", "targets"))
_UNIQUE = {"ci_timeout": "--ci-timeout", "rollout_timeout": "--rollout-timeout"}


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """argparse's formatter at the width argparse would pick, found without ``shutil`` (which
    imports bz2, lzma and zlib: 5 ms of every ``--help`` and usage error)."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=_help_width())


def _help_width() -> int:
    """``shutil.get_terminal_size().columns - 2``: COLUMNS, else the terminal, else 80."""
    import os

    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):  # no terminal: argparse's fallback
            columns = 0
    return (columns or 80) - 2


class _Unused:
    """Stands in for the parser of a verb the command line does not name: every call on it is
    ignored. Adding the ~150 arguments of all verbs costs ~10 ms of every start; ``--help``
    and argparse's errors need only the other verbs' names and help lines."""

    def __getattr__(self, name: str) -> Any:
        return self._ignore

    def _ignore(self, *args: object, **kwargs: object) -> Any:
        return self


def _verbs(parser: argparse.ArgumentParser | Any, dest: str) -> Any:
    if isinstance(parser, _Unused):
        return parser
    group: Any = parser.add_subparsers(dest=dest, metavar="VERB")
    group.required = True
    group.homelab_path = getattr(parser, "homelab_path", ())
    group.homelab_wanted = getattr(parser, "homelab_wanted", None)
    return group


def _verb(group: Any, name: str, help_text: str) -> argparse.ArgumentParser | Any:
    if isinstance(group, _Unused):
        return group
    path = (*group.homelab_path, name)
    wanted = group.homelab_wanted
    parser: argparse.ArgumentParser = group.add_parser(
        name,
        help=help_text,
        description=help_text,
        epilog=EXIT_CODES,
        formatter_class=_Formatter,
    )
    if wanted is not None and tuple(wanted[: len(path)]) != path:
        return _Unused()  # listed by name; its own arguments are never needed
    parser.homelab_path = path  # type: ignore[attr-defined]
    parser.homelab_wanted = wanted  # type: ignore[attr-defined]
    return parser


def _verb_words(argv: Sequence[str]) -> tuple[str, ...]:
    """The leading words of a command line that can name a verb (``ci status``)."""
    return tuple(word for word in argv if not word.startswith("-"))[:2]


def _add_commit(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "commit",
        nargs="?",
        default=None,
        metavar="COMMIT",
        help="HEAD (default), a branch, a tag or a sha",
    )


def build_parser(words: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``homelab`` parser; given the command line's verb ``words``, only that verb gets its
    arguments (the others are listed), which is all that parsing that command line needs."""
    parser = _Parser(
        prog="homelab",
        description="Verify a software landing in a homelab: CI green, rollouts done, e2e passed.",
        epilog=EXIT_CODES,
        formatter_class=_Formatter,
    )
    parser.homelab_wanted = None if words is None else tuple(words)  # type: ignore[attr-defined]
    from pytest_homelab import __version__

    parser.add_argument("-V", "--version", action="version", version=f"homelab {__version__}")
    verbs = _verbs(parser, "verb")

    ci_verbs = _verbs(_verb(verbs, "ci", "Woodpecker CI of a commit"), "ci_verb")
    status = _verb(ci_verbs, "status", "one immediate lookup of the commit's pipeline")
    _add_commit(status)
    _add_options(status, _CI_CONNECTION)
    status.add_argument("--json", action="store_true", help="print JSON for machines")
    status.set_defaults(handler=_ci_status)

    watch = _verb(
        ci_verbs, "watch", "wait until the commit's pipeline finishes; exit by its verdict"
    )
    _add_commit(watch)
    _add_options(watch, _CI_CONNECTION + _CI_WAIT)
    _add_session_flags(watch)
    watch.set_defaults(handler=_ci_watch)

    e2e = _verb(
        ci_verbs,
        "run-dev-e2e",
        "start the dev end-to-end run on D601 (the runner of "
        "origin's deploy.json); with --wait-ms, wait for its result",
    )
    e2e.add_argument(
        "--wait-ms",
        type=int,
        default=None,
        metavar="N",
        help="wait up to N milliseconds for the result (exit 124 if still running)",
    )
    _add_options(
        e2e,
        (
            "remote",
            "e2e_branch",
            "e2e_keep_namespace",
            "e2e_poll_interval",
            *_D601,
            "e2e_work_root",
            "e2e_env_file",
        ),
    )
    _add_session_flags(e2e)
    e2e.set_defaults(handler=_ci_run_dev_e2e)

    logs = _verb(
        ci_verbs,
        "logs",
        "show a dev e2e run's status and log tails from D601 "
        "(exit 0 passed, 1 failed, 3 unknown run, 4 still running)",
    )
    logs.add_argument("run_id", metavar="RUN_ID", help="the id run-dev-e2e printed")
    logs.add_argument(
        "--follow", action="store_true", help="keep printing new runner output until the run ends"
    )
    logs.add_argument(
        "--lines",
        type=int,
        default=40,
        metavar="N",
        help="how many lines of each log to show (default 40)",
    )
    _add_options(logs, (*_D601, "e2e_poll_interval"))
    logs.add_argument("--json", action="store_true", help="print JSON for machines")
    logs.set_defaults(handler=_ci_logs)

    manifest_verbs = _verbs(_verb(verbs, "manifest", "deploy.json"), "manifest_verb")
    check = _verb(
        manifest_verbs,
        "check",
        "validate a deploy.json and print every error (exit 0 valid, 2 invalid)",
    )
    check.add_argument(
        "path",
        nargs="?",
        default=None,
        metavar="PATH",
        help="the file (default: deploy.json at the repo root)",
    )
    check.add_argument(
        "--json", action="store_true", help="print JSON for machines (each problem with its path)"
    )
    check.set_defaults(handler=_manifest_check)

    deploy_verbs = _verbs(_verb(verbs, "deploy", "rollouts of the landed commit"), "deploy_verb")
    wait = _verb(
        deploy_verbs,
        "wait",
        "wait until every service runs an image of the commit and "
        "finished rolling out (image first, then kubectl's rollout rules)",
    )
    wait.add_argument(
        "targets",
        nargs="*",
        metavar="NS/DEPLOY",
        help="only these workloads (NS/NAME or NS/KIND/NAME); default: every "
        "service of the environment in deploy.json",
    )
    wait.add_argument(
        "--sha",
        default=None,
        metavar="SHA",
        help="the commit the images must come from (default: HEAD)",
    )
    wait.add_argument(
        "--no-probe",
        action="store_true",
        help="skip the smoke phase: do not ask the services' probe URLs (deploy.json) whether "
        "they serve the commit",
    )
    _add_options(wait, _ROLLOUT)
    _add_session_flags(wait)
    wait.set_defaults(handler=_deploy_wait)

    work_verbs = _verbs(_verb(verbs, "work", "land the current branch"), "work_verb")
    land = _verb(
        work_verbs,
        "land",
        "rebase (or merge) the branch onto the target, verify, push, "
        "then watch its CI (and rollouts with --deploy-wait)",
    )
    how = land.add_mutually_exclusive_group()
    how.add_argument(
        "--rebase",
        dest="strategy",
        action="store_const",
        const="rebase",
        help="rebase onto the target (the default)",
    )
    how.add_argument(
        "--merge",
        dest="strategy",
        action="store_const",
        const="merge",
        help="merge the target in instead",
    )
    verify = land.add_mutually_exclusive_group()
    _add_options(verify, ("verify_cmd",))
    verify.add_argument(
        "--no-verify",
        action="store_true",
        help="push without running the verify command (must be said explicitly)",
    )
    land.add_argument(
        "--no-ci-watch", action="store_true", help="stop after the push: do not watch CI"
    )
    land.add_argument(
        "--deploy-wait",
        action="store_true",
        help="after CI, also wait for the rollouts of deploy.json",
    )
    _add_options(
        land,
        (
            "land_onto",
            "push_retries",
            *_CI_CONNECTION,
            *_CI_WAIT,
            "env",
            "kubeconfig",
            "kube_context",
            "namespace",
            "rollout_timeout",
        ),
        rename={"rollout_timeout": "--rollout-timeout"},
    )
    _add_session_flags(land)
    land.set_defaults(handler=_work_land, strategy="rebase")

    demo = _verb(
        verbs,
        "demo",
        "land a commit in the built-in simulated homelab and verify it (CI, rollouts, dev e2e)",
    )
    demo.add_argument("--scenario", default="green", help="which story to replay (see --list)")
    demo.add_argument("--list", action="store_true", help="list the scenarios")
    _add_session_flags(demo)
    demo.set_defaults(handler=_demo)

    config = _verb(
        verbs,
        "config",
        "print every setting with its value and where it came from (flag, environment "
        "variable, file, default); secrets only as set or unset",
    )
    _add_options(config, _ALL, rename=_UNIQUE)
    config.add_argument("--json", action="store_true", help="print JSON for machines")
    config.set_defaults(handler=_config)

    doctor = _verb(
        verbs,
        "doctor",
        "check every dependency a landing needs (git, Woodpecker, Vault, Kubernetes, D601, "
        "deploy.json), one line each (exit 0 ready, 2 a problem)",
    )
    _add_options(doctor, _ALL, rename=_UNIQUE)
    doctor.add_argument(
        "--only", choices=("ci", "rollout", "e2e"), default=None, help="only this phase's checks"
    )
    doctor.add_argument("--json", action="store_true", help="print JSON for machines")
    doctor.set_defaults(handler=_doctor)

    init = _verb(
        verbs,
        "init",
        "write a starting deploy.json (environment --env, default dev) from the workloads "
        "the cluster runs; never over an existing file without --force",
    )
    init.add_argument(
        "--namespace",
        dest="init_namespaces",
        action="append",
        default=[],
        metavar="NS",
        help="look in this namespace (repeatable; default: every namespace you may list)",
    )
    init.add_argument(
        "--registry",
        dest="registries",
        action="append",
        default=[],
        metavar="PREFIX",
        help="keep images under this prefix, e.g. registry.example.org/team (repeatable; "
        "default: images with the git repo's name in their path)",
    )
    init.add_argument(
        "--e2e",
        action="store_true",
        help=f"add the dev ci block (the runner {'scripts/ci/dev-e2e.sh'}), copying the "
        "reference runner there when the repository has none",
    )
    init.add_argument("--force", action="store_true", help="replace an existing deploy.json")
    init.add_argument(
        "--dry-run", action="store_true", help="print the deploy.json instead of writing it"
    )
    _add_options(
        init,
        (
            "deploy_json",
            "env",
            "remote",
            "woodpecker_repo",
            "kubeconfig",
            "kube_context",
            "request_timeout",
        ),
    )
    init.set_defaults(handler=_init)
    return parser


def _add_session_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--junitxml",
        metavar="PATH",
        default=None,
        help="where to write the JUnit XML (default: under ~/.local/state/homelab)",
    )
    parser.add_argument("--json", action="store_true", help="print the verdict as JSON")


def _flags(args: argparse.Namespace) -> dict[str, object | None]:
    flags = {key: getattr(args, key, None) for key in OPTIONS_BY_KEY}
    flags["targets"] = None  # positional NS/DEPLOY arguments, set below when given
    for name in ("commit", "sha"):  # a positional COMMIT, or deploy wait's --sha
        if getattr(args, name, None) is not None:
            flags["commit"] = getattr(args, name)
    if getattr(args, "targets", None):
        flags["targets"] = ",".join(args.targets)
    return flags


def _typed_flags(args: argparse.Namespace) -> dict[str, str]:
    """The flag this verb has for each setting (``ci watch --timeout`` for ``ci_timeout``)."""
    names: dict[str, str] = getattr(args, "flag_names", None) or {}
    return names


def _settings(args: argparse.Namespace, cwd: Path | None = None) -> Settings:
    """Resolve settings, then validate deploy.json before anything acts.

    A deploy.json that is configured must exist; the default one is validated when present.
    """
    from pytest_homelab.core.settings import resolve_settings

    settings = resolve_settings(_flags(args), cwd=cwd, flag_names=_typed_flags(args))
    path = settings.deploy_json_path
    if settings.sources.get("deploy_json", "default") != "default" or path.exists():
        from pytest_homelab.core.manifest import load_manifest

        load_manifest(path)
    return settings


# -- verbs ---------------------------------------------------------------------------------------


def _ci_status(args: argparse.Namespace) -> int:

    from pytest_homelab.ci.models import classify
    from pytest_homelab.ci.phase import open_client, resolve_target, woodpecker_token
    from pytest_homelab.core.clock import Deadline, format_duration

    settings = _settings(args)
    settings.require("woodpecker_server", "ci status")
    target = resolve_target(settings)
    token = woodpecker_token(settings)
    client = open_client(settings, token)
    deadline = Deadline.after(min(60.0, settings.ci_timeout))
    try:
        repo = client.lookup_repo(target.slug, deadline=deadline)
        found = client.find_pipeline(
            repo,
            target.sha,
            events=settings.ci_events,
            pages=settings.ci_pages,
            not_before=target.commit_time,
            deadline=deadline,
            branch=target.branch_for(repo),
        )
    finally:
        client.close()
    if found is None:
        if args.json:
            _print_json(
                {"repo": repo.full_name, "commit": target.sha, "pipeline": None}, EXIT_NOT_FOUND
            )
        else:
            print(
                f"no pipeline for {target.sha[:8]} in {repo.full_name} "
                f"(events {','.join(settings.ci_events)})"
            )
        return EXIT_NOT_FOUND
    verdict = classify(found.status)
    url = client.pipeline_url(repo, found.number)
    elapsed = found.duration
    if elapsed is None and found.started:
        import time

        elapsed = max(0, int(time.time()) - found.started)
    code = {"green": EXIT_SUCCESS, "red": EXIT_FAILED, "skipped": EXIT_FAILED}.get(
        verdict, EXIT_STILL_RUNNING
    )
    if args.json:
        _print_json(
            {
                "repo": repo.full_name,
                "commit": target.sha,
                "pipeline": {
                    "number": found.number,
                    "status": found.status,
                    "event": found.event,
                    "commit": found.commit,
                    "url": url,
                    "elapsed_seconds": elapsed,
                    "superseded_by": found.superseded_by or None,
                },
            },
            code,
        )
    else:
        shown = format_duration(elapsed) if elapsed is not None else "-"
        print(f"#{found.number} {found.status} {found.event} {found.commit[:8]} {shown} {url}")
    return code


def _ci_watch(args: argparse.Namespace) -> int:
    settings = _settings(args)
    settings.require("woodpecker_server", "ci watch")
    from pytest_homelab.report.session import run_checks

    return run_checks(
        settings,
        verb="ci-watch",
        markexpr="ci",
        flags=_flags(args),
        junitxml=args.junitxml,
        as_json=args.json,
    )


def _deploy_wait(args: argparse.Namespace) -> int:
    settings = _settings(args)
    from pytest_homelab.rollout.plan import rollout_plan

    plan = rollout_plan(settings)  # validates deploy.json, environment, commit and targets
    if not plan.targets:
        said = f"nothing to wait for: environment {plan.environment} has no services"
        if args.json:
            _print_json({"message": said}, EXIT_SUCCESS)
        else:
            print(said)
        return EXIT_SUCCESS
    from pytest_homelab.report.session import run_checks

    flags = _flags(args)
    if plan.environment is not None:
        flags["env"] = plan.environment
    return run_checks(
        settings,
        verb="deploy-wait",
        markexpr="rollout" if args.no_probe else "rollout or smoke",
        flags=flags,
        junitxml=args.junitxml,
        as_json=args.json,
    )


def _ci_run_dev_e2e(args: argparse.Namespace) -> int:
    flags = _flags(args)
    if args.wait_ms is not None:
        if args.wait_ms < 0:
            raise BadInput(
                f"--wait-ms must be zero or more milliseconds (got {args.wait_ms})",
                hint="give --wait-ms 0 or more (600000 waits up to 10 minutes), or leave it out "
                "to dispatch without waiting",
            )
        flags["e2e_wait"] = f"{args.wait_ms}ms"
    settings = _every_problem_at_once(args, flags)
    from pytest_homelab.report.session import run_checks

    return run_checks(
        settings,
        verb="run-dev-e2e",
        markexpr="e2e",
        flags=flags,
        junitxml=args.junitxml,
        as_json=args.json,
    )


def _every_problem_at_once(args: argparse.Namespace, flags: dict[str, object | None]) -> Settings:
    """``ci run-dev-e2e``'s settings, D601's address and the remote's deploy.json are checked
    together, and every problem is reported in one error, not one per attempt."""
    import os

    from pytest_homelab.core.settings import resolve_settings

    problems: list[str] = []
    hints: list[str] = []
    flags, environ = dict(flags), dict(os.environ)
    settings: Settings | None = None
    for _ in range(len(OPTIONS_BY_KEY) + 1):  # drop each bad value, then resolve the rest
        try:
            settings = resolve_settings(flags, environ, flag_names=_typed_flags(args))
            break
        except BadInput as exc:
            problems.append(exc.message)
            hints += [exc.hint] if exc.hint else []
            key = exc.message.split(" from ", 1)[0]
            source = exc.message.split(" from ", 1)[-1].split(":", 1)[0]
            if flags.get(key) is not None:
                flags[key] = None
                for name in OPTIONS_BY_KEY[key].env:  # the flag beat them: no second report
                    environ.pop(name, None)
            elif source.startswith("env "):
                environ.pop(source.removeprefix("env "), None)
            else:
                raise
    if settings is None:  # pragma: no cover - the loop drops one value per round
        raise BadInput("\n".join(problems))
    if settings.d601_transport == "ssh" and not settings.d601_host:
        problems.append("ci run-dev-e2e needs the setting d601_host (D601's SSH host)")
        hints.append("pass --d601-host HOST (env HOMELAB_D601_HOST), or --transport local on D601")
    from pytest_homelab.e2e.phase import plan_dev_run

    try:
        plan_dev_run(settings)
    except BadInput as exc:
        problems.append(exc.message)
        hints += [exc.hint] if exc.hint else []
    if len(problems) == 1:
        raise BadInput(problems[0], hint=hints[0] if hints else None)
    if problems:
        listed = "\n".join(f"  - {problem}" for problem in problems)
        raise BadInput(
            f"ci run-dev-e2e cannot start, {len(problems)} problems:\n{listed}",
            hint="; ".join(dict.fromkeys(hints)) or None,
        )
    return settings


def _ci_logs(args: argparse.Namespace) -> int:
    from pytest_homelab.core.settings import resolve_settings
    from pytest_homelab.e2e.logs import show_run

    settings = resolve_settings(_flags(args), flag_names=_typed_flags(args))
    if settings.d601_transport == "ssh":
        settings.require("d601_host", "ci logs")
    return show_run(settings, args.run_id, follow=args.follow, lines=args.lines, as_json=args.json)


def _work_land(args: argparse.Namespace) -> int:

    from pytest_homelab.core.gitrepo import GitRepo
    from pytest_homelab.land import land, plan_landing, shell_verify

    if args.deploy_wait and args.no_ci_watch:
        raise BadInput("--deploy-wait needs the checks that --no-ci-watch turns off")
    settings = _settings(args)
    git = GitRepo.discover(settings.repo_root)
    plan = plan_landing(
        git,
        remote=settings.remote,
        onto=settings.land_onto,
        strategy=args.strategy,
        verify_cmd=settings.verify_cmd,
        no_verify=args.no_verify,
    )
    if not args.no_ci_watch:  # know before pushing that the landing can be verified
        settings.require("woodpecker_server", "watching CI after landing (or --no-ci-watch)")
    say = (lambda line: print(line, file=sys.stderr)) if args.json else print
    import time

    started = time.monotonic()
    try:
        landed = land(
            git,
            plan,
            verify=shell_verify(str(git.root)),
            retries=settings.push_retries,
            progress=lambda line: print(line, file=sys.stderr),
        )
    except KeyboardInterrupt as exc:
        return _land_interrupted(args, settings, exc, time.monotonic() - started)
    if landed.already:
        say(
            f"land: nothing new to land: {landed.sha[:8]} is already on "
            f"{landed.remote}/{landed.target}"
        )
    else:
        say(
            f"landed {plan.branch} onto {landed.remote}/{landed.target}: {landed.sha[:8]} "
            f"({landed.commits} commit{'s' if landed.commits != 1 else ''}, "
            f"attempt {landed.attempts})"
        )
    report = {
        "landed": {
            "sha": landed.sha,
            "remote": landed.remote,
            "target": landed.target,
            "branch": plan.branch,
            "strategy": plan.strategy,
            "commits": landed.commits,
            "attempts": landed.attempts,
            "already": landed.already,
        }
    }
    if args.no_ci_watch:
        say("land: --no-ci-watch: not watching CI")
        if args.json:
            _print_json(
                {**report, "message": "landed; --no-ci-watch: CI not watched"}, EXIT_SUCCESS
            )
        return EXIT_SUCCESS
    from pytest_homelab.report.session import run_checks

    flags = _flags(args)
    flags["commit"] = landed.sha
    if flags.get("ci_branch") is None:  # the pipeline that counts is the target branch's
        flags["ci_branch"] = landed.target
    code = run_checks(
        settings,
        verb="work-land",
        markexpr="ci or rollout or smoke" if args.deploy_wait else "ci",
        flags=flags,
        junitxml=args.junitxml,
        as_json=args.json,
        report=report,
    )
    if code == EXIT_NOT_FOUND:
        print(
            f"land: the push itself landed ({landed.sha[:8]} on {landed.remote}/"
            f"{landed.target}); no CI pipeline ran for it",
            file=sys.stderr,
        )
    return code


def _land_interrupted(
    args: argparse.Namespace, settings: Settings, exc: KeyboardInterrupt, seconds: float
) -> int:
    """``work land`` interrupted while verifying or pushing: a JUnit with that step as the
    running check and every check it would have run as not run, then the verdict."""
    from pathlib import Path

    from pytest_homelab.report.interrupt import Unfinished, write_interrupted
    from pytest_homelab.report.junit import read_junit
    from pytest_homelab.report.session import default_junit_path
    from pytest_homelab.report.verdict import render_json, render_text

    name = "SIGTERM" if isinstance(exc, Terminated) else "SIGINT"
    code = SIGNAL_EXIT_CODES[name]
    checks = [
        Unfinished(
            "homelab.work_land",
            "land",
            running=True,
            seconds=seconds,
            properties=[("phase", "land")],
            message=f"after {seconds:.1f}s, while verifying or pushing: the push may or may "
            "not have reached the remote\n  next: look with `git fetch` and `git log`, then "
            "run `homelab work land` again (it lands nothing twice)",
        )
    ]
    if not args.no_ci_watch:
        checks.append(
            Unfinished(
                "test_ci", "test_pipeline_green", running=False, properties=[("phase", "ci")]
            )
        )
    if args.deploy_wait:
        for service in _services(settings):
            checks.append(
                Unfinished(
                    "test_rollout",
                    f"test_rolled_out[{service}]",
                    running=False,
                    properties=[("phase", "rollout")],
                )
            )
    junit = Path(args.junitxml) if args.junitxml else default_junit_path("work-land")
    write_interrupted(junit, name, checks)
    records = read_junit(junit)
    print(f"homelab: interrupted by {name}", file=sys.stderr)
    if args.json:
        import json

        print(json.dumps(render_json(records, junit, code), indent=2))
    else:
        for line in render_text(records, junit, code):
            print(line)
    return code


def _services(settings: Settings) -> list[str]:
    """The names of deploy.json's services for the landing's environment, if it can tell."""
    try:
        from pytest_homelab.rollout.plan import rollout_plan

        return [t.name for t in rollout_plan(settings).targets]
    except HomelabError:
        return ["services"]


def _manifest_check(args: argparse.Namespace) -> int:
    """Valid: one line (or the JSON document) on stdout. Invalid: an error like every verb's,
    which lists every problem (with ``--json``, each with its JSON path)."""
    from pathlib import Path

    from pytest_homelab.core.manifest import load_manifest
    from pytest_homelab.core.settings import resolve_settings

    path = Path(args.path) if args.path is not None else resolve_settings({}).deploy_json_path
    manifest = load_manifest(path)  # raises ManifestInvalid (BadInput) with every problem
    said = f"{path}: valid ({manifest.summary()})"
    if args.json:
        _print_json({"message": said, "file": str(path), "problems": []}, EXIT_SUCCESS)
    else:
        print(said)
    return EXIT_SUCCESS


def _demo(args: argparse.Namespace) -> int:
    from pytest_homelab.demo import list_scenarios, run_demo

    if args.list:
        for name, text in list_scenarios():
            print(f"{name:20} {text}")
        return EXIT_SUCCESS
    code: int = run_demo(args.scenario, junitxml=args.junitxml, as_json=args.json)
    return code


class _ArgumentError(Exception):
    """argparse's error, kept with the parser it belongs to (see :class:`_Parser`)."""

    def __init__(self, parser: argparse.ArgumentParser, message: str) -> None:
        super().__init__(message)
        self.parser = parser
        self.message = message


class _Parser(argparse.ArgumentParser):
    """Within :func:`main`, reports errors to it instead of exiting, so that the verb's own
    usage, a "did you mean" and the JSON document can follow; elsewhere, argparse's way."""

    reporting = False

    def error(self, message: str) -> Never:
        if _Parser.reporting:
            raise _ArgumentError(self, message)
        super().error(message)


def _wants_json(argv: Sequence[str]) -> bool:
    words = list(argv)
    return "--json" in (words[: words.index("--")] if "--" in words else words)


def _verb_parser(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.ArgumentParser:
    """The parser of the deepest verb the command line names (``homelab ci watch``'s own)."""
    current = parser
    for word in argv:
        if word.startswith("-"):
            continue
        group = next(
            (a for a in current._actions if isinstance(a, argparse._SubParsersAction)), None
        )
        if group is None or word not in group.choices:
            break
        current = group.choices[word]
    return current


def _suggestions(parser: argparse.ArgumentParser, message: str, argv: Sequence[str]) -> list[str]:
    import difflib
    import re

    choice = re.search(r"invalid choice: '([^']*)'(?: \(choose from ([^)]*)\))?", message)
    if choice:
        listed = [c.strip(" '\"") for c in (choice.group(2) or "").split(",") if c.strip()]
        if not listed:  # a verb: its parser's sub-commands
            group = next(
                (a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None
            )
            listed = list(group.choices) if group is not None else []
        return difflib.get_close_matches(choice.group(1), listed, n=1)
    flags = [f for a in parser._actions for f in a.option_strings if f.startswith("--")]
    wanted = re.search(r"unrecognized arguments: (.*)", message)
    words = wanted.group(1).split() if wanted else []
    found: list[str] = []
    for word in words:
        if word.startswith("-"):
            found += difflib.get_close_matches(word.split("=", 1)[0], flags, n=1, cutoff=0.6)
    return found


def _bad_usage(
    parser: argparse.ArgumentParser, error: _ArgumentError, argv: Sequence[str], as_json: bool
) -> int:
    """argparse's error with the verb's own usage, a "did you mean" and a ``next:`` line."""
    if error.parser is parser and "unrecognized arguments" in error.message:
        owner = _verb_parser(parser, argv)  # the verb's unknown flag surfaces at the top
    else:
        owner = error.parser
    guesses = _suggestions(owner, error.message, argv)
    hint = f"did you mean {' '.join(guesses)}? " if guesses else ""
    hint += f"see `{owner.prog} --help`"
    sys.stderr.write(owner.format_usage())
    print(f"{owner.prog}: error: {error.message}\n  next: {hint}", file=sys.stderr)
    if as_json:
        _print_error_json("BadInput", f"{owner.prog}: {error.message}", hint, EXIT_BAD_INPUT)
    return EXIT_BAD_INPUT


def _print_error_json(
    outcome: str,
    message: str,
    hint: str | None,
    code: int,
    extra: dict[str, object] | None = None,
) -> None:
    """The one JSON document of a verb that ended before any check ran."""
    _print_json({"outcome": outcome, "message": message, "next": hint, **(extra or {})}, code)


def _print_json(document: dict[str, object], code: int) -> None:
    """A lookup's or an early error's JSON document: ``verdict``, ``exit_code`` and ``checks``
    (none: no check ran) first, as in every verb's document (docs/cli.md has the schema)."""
    import json

    head = {"verdict": VERDICTS.get(code, "ERROR"), "exit_code": code, "checks": []}
    print(json.dumps({**head, **document}, indent=2))


def _json_extra(exc: HomelabError) -> dict[str, object]:
    """What an error adds to the JSON document: each deploy.json problem with its JSON path."""
    errors = getattr(exc, "errors", None)
    source = getattr(exc, "source", None)
    if isinstance(errors, list) and source is not None:
        return {
            "file": str(source),
            "problems": [{"path": e.path, "message": e.message} for e in errors],
        }
    return {}


def _verb_name(args: argparse.Namespace) -> str:
    words = [args.verb]
    sub = getattr(args, f"{args.verb}_verb", None)
    return " ".join(words + ([sub] if sub else []))


def _trap_sigterm() -> Callable[[], None]:
    """SIGTERM unwinds like Ctrl-C (raising :class:`Terminated`), so that every verb writes
    its JUnit and verdict and exits 143 instead of dying silently. Returns the undo."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def terminate(signum: int, frame: object) -> None:
        raise Terminated()

    before = signal.signal(signal.SIGTERM, terminate)

    def restore() -> None:
        signal.signal(signal.SIGTERM, before)

    return restore


def _config(args: argparse.Namespace) -> int:
    from pytest_homelab.core.settings import resolve_settings
    from pytest_homelab.onboarding.config import scoped, show_config

    settings = resolve_settings(_flags(args), collect_refused=True)
    return show_config(scoped(settings), as_json=args.json)


def _doctor(args: argparse.Namespace) -> int:
    from pytest_homelab.core.settings import resolve_settings
    from pytest_homelab.onboarding.doctor import run_doctor

    settings = resolve_settings(_flags(args), collect_refused=True)
    return run_doctor(settings, only=args.only, as_json=args.json)


def _init(args: argparse.Namespace) -> int:
    from pytest_homelab.core.settings import resolve_settings
    from pytest_homelab.onboarding.init import run_init

    settings = resolve_settings(_flags(args))
    return run_init(
        settings,
        namespaces=args.init_namespaces,
        registries=args.registries,
        env=settings.env or "dev",
        e2e=args.e2e,
        force=args.force,
        dry_run=args.dry_run,
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    as_json = _wants_json(argv)
    parser = build_parser(_verb_words(argv))
    _Parser.reporting = True
    try:
        args = parser.parse_args(argv)
    except _ArgumentError as exc:
        return _bad_usage(parser, exc, argv, as_json)
    except SystemExit as exc:  # --help, --version: printed
        return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
    finally:
        _Parser.reporting = False
    handler: Handler = args.handler
    verb = _verb_name(args)
    args.flag_names = {
        action.dest: action.option_strings[-1]
        for action in _verb_parser(parser, argv)._actions
        if action.dest in OPTIONS_BY_KEY and action.option_strings
    }
    restore = _trap_sigterm()
    collections = fewer_collections()
    try:
        return _run(handler, args, verb, as_json)
    finally:
        collections()
        restore()


def _run(handler: Handler, args: argparse.Namespace, verb: str, as_json: bool) -> int:
    try:
        return handler(args)
    except HomelabError as exc:
        # Every error says what to do next; the verb's help is the last resort.
        hint = exc.hint or f"see `homelab {verb} --help`"
        text = f"{exc.message}\n  next: {hint}"
        outcome = outcome_of(exc)
        print(f"homelab: {outcome}: {text}", file=sys.stderr)
        if as_json:
            _print_error_json(outcome, exc.message, hint, exc.exit_code, _json_extra(exc))
        return exc.exit_code
    except KeyboardInterrupt as exc:
        name = "SIGTERM" if isinstance(exc, Terminated) else "SIGINT"
        code = SIGNAL_EXIT_CODES[name]
        message = f"interrupted by {name}"
        print(f"homelab: {message}", file=sys.stderr)
        if as_json:
            _print_error_json("Interrupted", message, None, code)
        else:
            print(f"verdict: INTERRUPTED (exit {code})")
        return code
