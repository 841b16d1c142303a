"""The ``homelab`` command. Thin: flags, settings, then a pytest session or one lookup.

Heavy imports (pytest, httpx, kubernetes, paramiko, hvac) happen inside the verbs that need them,
so ``homelab --help`` starts fast.
"""

from __future__ import annotations

import argparse
import sys

from pytest_homelab.core.options import OPTIONS_BY_KEY
from pytest_homelab.core.outcomes import (
    EXIT_BAD_INPUT,
    EXIT_DEADLINE,
    EXIT_FAILED,
    EXIT_NOT_FOUND,
    EXIT_STILL_RUNNING,
    EXIT_SUCCESS,
    BadInput,
    HomelabError,
)

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: typing adds ~5 ms to `homelab --help` (P4)
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path
    from typing import Any

    from pytest_homelab.core.settings import Settings

    Handler = Callable[[argparse.Namespace], int]

EXIT_CODES = f"""exit codes (every verb):
  {EXIT_SUCCESS}    success: every check passed
  {EXIT_FAILED}    a check failed (red pipeline, superseded, prerequisite failed)
  {EXIT_BAD_INPUT}    bad input, configuration, auth or unreachable infrastructure
  {EXIT_NOT_FOUND}    not found (no pipeline for the commit within the appear grace; a workload
       that does not exist; an unknown dev e2e run)
  {EXIT_DEADLINE}  deadline exceeded (also: still blocked on approval)
  several outcomes fold as 2 > 1 > 124 > 3 > 0.
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
    parser = argparse.ArgumentParser(
        prog="homelab",
        description="Verify a software landing in a homelab: CI green, rollouts done, e2e passed.",
        epilog=EXIT_CODES,
        formatter_class=_Formatter,
    )
    parser.homelab_wanted = None if words is None else tuple(words)  # type: ignore[attr-defined]
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


def _settings(args: argparse.Namespace, cwd: Path | None = None) -> Settings:
    """Resolve settings, then validate deploy.json before anything acts.

    A deploy.json that is configured must exist; the default one is validated when present.
    """
    from pytest_homelab.core.settings import resolve_settings

    settings = resolve_settings(_flags(args), cwd=cwd)
    path = settings.deploy_json_path
    if settings.sources.get("deploy_json", "default") != "default" or path.exists():
        from pytest_homelab.core.manifest import load_manifest

        load_manifest(path)
    return settings


# -- verbs ---------------------------------------------------------------------------------------


def _ci_status(args: argparse.Namespace) -> int:
    import json

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
            print(json.dumps({"repo": repo.full_name, "commit": target.sha, "pipeline": None}))
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
    if args.json:
        print(
            json.dumps(
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
                }
            )
        )
    else:
        shown = format_duration(elapsed) if elapsed is not None else "-"
        print(f"#{found.number} {found.status} {found.event} {found.commit[:8]} {shown} {url}")
    return {"green": EXIT_SUCCESS, "red": EXIT_FAILED, "skipped": EXIT_FAILED}.get(
        verdict, EXIT_STILL_RUNNING
    )


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
        print(f"nothing to wait for: environment {plan.environment} has no services")
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
            raise BadInput("--wait-ms must be zero or more milliseconds")
        flags["e2e_wait"] = f"{args.wait_ms}ms"
    from pytest_homelab.core.settings import resolve_settings

    settings = resolve_settings(flags)
    if settings.d601_transport == "ssh":
        settings.require("d601_host", "ci run-dev-e2e")
    from pytest_homelab.report.session import run_checks

    return run_checks(
        settings,
        verb="run-dev-e2e",
        markexpr="e2e",
        flags=flags,
        junitxml=args.junitxml,
        as_json=args.json,
    )


def _ci_logs(args: argparse.Namespace) -> int:
    from pytest_homelab.core.settings import resolve_settings
    from pytest_homelab.e2e.logs import show_run

    settings = resolve_settings(_flags(args))
    if settings.d601_transport == "ssh":
        settings.require("d601_host", "ci logs")
    return show_run(settings, args.run_id, follow=args.follow, lines=args.lines, as_json=args.json)


def _work_land(args: argparse.Namespace) -> int:
    import json

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
    landed = land(
        git,
        plan,
        verify=shell_verify(str(git.root)),
        retries=settings.push_retries,
        progress=lambda line: print(line, file=sys.stderr),
    )
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
            print(json.dumps({**report, "verdict": "LANDED", "exit_code": EXIT_SUCCESS}, indent=2))
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


def _manifest_check(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pytest_homelab.core.manifest import check_manifest
    from pytest_homelab.core.settings import resolve_settings

    path = Path(args.path) if args.path is not None else resolve_settings({}).deploy_json_path
    code: int
    lines: list[str]
    code, lines = check_manifest(path)
    stream = sys.stdout if code == 0 else sys.stderr
    for line in lines:
        print(line, file=stream)
    return code


def _demo(args: argparse.Namespace) -> int:
    from pytest_homelab.demo import list_scenarios, run_demo

    if args.list:
        for name, text in list_scenarios():
            print(f"{name:20} {text}")
        return EXIT_SUCCESS
    code: int = run_demo(args.scenario, junitxml=args.junitxml, as_json=args.json)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_verb_words(argv))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed usage and the error: bad input
        return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
    handler: Handler = args.handler
    try:
        return handler(args)
    except HomelabError as exc:
        print(f"homelab: {type(exc).__name__}: {exc.render()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("homelab: interrupted", file=sys.stderr)
        return 130
