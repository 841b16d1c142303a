"""Git facts about the repo under test: commits, remotes, files at a commit, ancestry.

Runs ``git`` as a subprocess: arguments as a list (no shell), ``LC_ALL=C``, no prompts (no
terminal, ``GIT_TERMINAL_PROMPT=0``, stdin closed) and with the variables that would point git at
another repository (``GIT_DIR``, ``GIT_WORK_TREE``, ...) removed. A value a user typed is checked
before it reaches git and is passed after ``--end-of-options`` or ``--``.

Also the pure parsers :func:`parse_repo_slug` (a remote URL → Woodpecker's ``owner/name``) and
:func:`parse_repo_flag` (a user's ``--repo``).
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from pytest_homelab.core.outcomes import BadInput, InfraError, NotFound

PREFERRED_REMOTES = ("forgejo", "origin")
"""Picked in this order when no remote is named: the Go CLI's ``forgejo``, then ``origin``."""

GIT_TIMEOUT = 60.0
NETWORK_TIMEOUT = 300.0  # fetch and ls-remote

_FULL_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")  # SHA-1, or SHA-256 repositories
_HEX_PREFIX = re.compile(r"[0-9a-fA-F]{4,64}")
# Set by hooks and wrappers; each would make git look at another repository than ``root``.
_REPO_LOCATING_ENV = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
    "GIT_QUARANTINE_PATH",
)
_SLUG_HINT = "give the Woodpecker repo as OWNER/NAME (e.g. homelab/app), or a clone URL"


class GitError(BadInput):
    """A git command failed in a way the user has to sort out (exit code 2)."""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _REPO_LOCATING_ENV}
    env.update(
        LC_ALL="C",
        LANG="C",
        GIT_TERMINAL_PROMPT="0",
        GIT_OPTIONAL_LOCKS="0",
        GCM_INTERACTIVE="never",
    )
    return env


def _git(
    cwd: Path, *args: str, timeout: float = GIT_TIMEOUT, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run git in ``cwd``; never raises for a non-zero exit, only when git cannot run at all."""
    try:
        return subprocess.run(
            ["git", *args],
            cwd=cwd,
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            env=_env(),
            check=False,
            timeout=timeout,
            start_new_session=True,  # no controlling terminal: ssh and helpers cannot prompt
        )
    except FileNotFoundError:
        if not cwd.is_dir():
            raise BadInput(f"directory {cwd} does not exist") from None
        raise BadInput(
            "git is not installed (no `git` on PATH)",
            hint="install git (e.g. apt-get install git) and run again",
        ) from None
    except NotADirectoryError:
        raise BadInput(f"{cwd} is not a directory") from None
    except subprocess.TimeoutExpired:
        raise InfraError(f"git {args[0]} did not finish within {timeout:.0f}s in {cwd}") from None


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def mask_credentials(text: str) -> str:
    """``text`` with the user:password part of every ``scheme://user:pw@host`` replaced."""
    return re.sub(r"(?<=://)[^\s'\"<>]*@", "***@", text)


def _stderr(done: subprocess.CompletedProcess[bytes]) -> str:
    lines = [line for line in _text(done.stderr).splitlines() if line.strip()]
    return mask_credentials(" / ".join(lines[-3:]))[:400] or f"exit code {done.returncode}"


def _refuse_odd(value: str, what: str) -> None:
    """Refuse a value that git could read as an option, or that holds whitespace/controls."""
    if not value:
        raise BadInput(f"{what} is empty")
    if value.startswith("-"):
        raise BadInput(f"{what} {value!r} starts with '-'", hint="give a name, not an option")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value):
        raise BadInput(f"{what} {value!r} contains whitespace or control characters")


@dataclass(frozen=True)
class GitRepo:
    """A git work tree; ``root`` is its top-level directory."""

    root: Path

    @classmethod
    def discover(cls, path: str | os.PathLike[str]) -> GitRepo:
        """The repository containing ``path`` (a directory or a file in it)."""
        start = Path(path)
        if start.is_file():
            start = start.parent
        done = _git(start, "rev-parse", "--show-toplevel")
        if done.returncode != 0:
            stderr = _text(done.stderr)
            if "dubious ownership" in stderr:
                raise BadInput(
                    f"git refuses the repository at {start}: it belongs to another user",
                    hint=f"git config --global --add safe.directory {start}",
                )
            if "must be run in a work tree" in stderr:
                raise BadInput(f"not inside a git work tree (cwd={start} is a bare repo or .git)")
            raise BadInput(
                f"not inside a git repository (cwd={start})",
                hint="run inside the repo's checkout, or pass --repo OWNER/NAME and a commit sha",
            )
        return cls(Path(_text(done.stdout).strip()))

    # -- plumbing ------------------------------------------------------------------------------

    def run(self, *args: str, check: bool = True, timeout: float = GIT_TIMEOUT) -> str:
        """git's stdout as text; with ``check``, a non-zero exit raises GitError."""
        done = _git(self.root, *args, timeout=timeout)
        if check and done.returncode != 0:
            raise GitError(f"git {' '.join(args[:2])} failed in {self.root}: {_stderr(done)}")
        return _text(done.stdout)

    def _ok(self, *args: str) -> bool:
        return _git(self.root, *args).returncode == 0

    def _peel(self, ref: str) -> str | None:
        """The full sha of the commit ``ref`` names, or None. ``ref`` must be checked already."""
        verify = ("rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")
        sha = self.run(*verify, check=False).strip()
        return sha if _FULL_SHA.fullmatch(sha) else None

    def _object_types(self, prefix: str) -> list[tuple[str, str]]:
        """Every object whose name starts with ``prefix`` (4+ hex), with its type."""
        shas = self.run("rev-parse", f"--disambiguate={prefix.lower()}", check=False).split()
        if not shas:
            return []
        done = _git(self.root, "cat-file", "--batch-check", stdin="\n".join(shas).encode() + b"\n")
        found = []
        for line in _text(done.stdout).splitlines():
            parts = line.split()
            if len(parts) >= 2 and _FULL_SHA.fullmatch(parts[0]):
                found.append((parts[0], parts[1]))
        return found

    # -- commits -------------------------------------------------------------------------------

    def resolve_commit(self, ref: str) -> str:
        """HEAD, a branch, a tag, a short or full sha (any revision) → the commit's full sha."""
        _refuse_odd(ref, "commit")
        sha = self._peel(ref)
        if sha is not None:
            return sha
        if _HEX_PREFIX.fullmatch(ref):
            found = self._object_types(ref)
            commitish = [s for s, kind in found if kind in ("commit", "tag")]
            if len(commitish) > 1:
                shown = ", ".join(s[:12] for s in commitish[:4])
                raise BadInput(
                    f"short sha {ref} is ambiguous in {self.root}: "
                    f"{len(commitish)} objects start with it ({shown})",
                    hint="give more characters of the sha (12 or more)",
                )
            if found and not commitish:
                raise BadInput(f"{ref} names a {found[0][1]} in {self.root}, not a commit")
        other = self.run("rev-parse", "--verify", "--quiet", "--end-of-options", ref, check=False)
        kind = self.run("cat-file", "-t", other.strip(), check=False).strip() if other else ""
        if kind:  # rev-parse --verify accepts any full sha; cat-file knows if the object exists
            raise BadInput(f"{ref!r} names a {kind} in {self.root}, not a commit")
        if ref == "HEAD":
            raise BadInput(f"the repository {self.root} has no commits yet (HEAD is unborn)")
        raise BadInput(
            f"unknown commit {ref!r} in {self.root}",
            hint="check the name; a commit made elsewhere needs `git fetch` first",
        )

    def commit_time(self, commit: str) -> int:
        """The committer time of ``commit`` (any revision), as unix seconds."""
        sha = self.resolve_commit(commit)
        out = self.run("-c", "log.showSignature=false", "show", "-s", "--format=%ct", sha)
        return int(out.strip())

    def is_ancestor(self, ancestor: str, descendant: str) -> bool | None:
        """Whether ``ancestor`` is in ``descendant``'s history (a commit is its own ancestor).

        None when either is not a commit present here, or when a shallow clone cuts the history
        so that "no" cannot be told from "not known".
        """
        shas: list[str] = []
        for ref in (ancestor, descendant):
            try:
                _refuse_odd(ref, "commit")
            except BadInput:
                return None
            sha = self._peel(ref)
            if sha is None:
                return None
            shas.append(sha)
        done = _git(self.root, "merge-base", "--is-ancestor", *shas)
        if done.returncode == 0:
            return True
        if done.returncode == 1:
            shallow = self.run("rev-parse", "--is-shallow-repository", check=False).strip()
            return None if shallow == "true" else False
        raise GitError(f"git merge-base failed in {self.root}: {_stderr(done)}")

    # -- files ---------------------------------------------------------------------------------

    def _repo_path(self, path: str | os.PathLike[str]) -> str:
        """``path`` as git names it inside the tree: relative to the root, with ``/``."""
        raw = os.fspath(path)
        if not raw:
            raise BadInput("path is empty")
        if any(ord(c) < 32 for c in raw):
            raise BadInput(f"path {raw!r} contains control characters")
        given = Path(raw)
        if given.is_absolute():
            resolved = given.parent.resolve() / given.name
            try:
                raw = resolved.relative_to(self.root.resolve()).as_posix()
            except ValueError:
                raise BadInput(f"path {given} is outside the repository {self.root}") from None
        parts = [p for p in PurePosixPath(raw.replace(os.sep, "/")).parts if p != "."]
        if not parts or ".." in parts:
            raise BadInput(f"path {os.fspath(path)!r} does not name a file inside the repository")
        return "/".join(parts)

    def show_file(self, commit: str, path: str | os.PathLike[str]) -> bytes:
        """The file's bytes as committed in ``commit`` (never the working tree or the index).

        Raw blob content: no textconv, no smudge filters (a Git LFS file gives its pointer).
        """
        sha = self.resolve_commit(commit)
        rel = self._repo_path(path)
        spec = f"{sha}:{rel}"
        done = _git(self.root, "cat-file", "blob", spec)
        if done.returncode == 0:
            return done.stdout
        kind = self.run("cat-file", "-t", spec, check=False).strip()
        where = f"{commit}:{rel}" + ("" if commit == sha else f" (commit {sha[:12]})")
        if kind == "tree":
            raise BadInput(f"{where} is a directory, not a file")
        if kind == "commit":
            raise BadInput(f"{where} is a submodule, not a file")
        raise NotFound(
            f"no file {where}: it does not exist in that commit",
            hint="commit and push the file, or check the path and the commit",
        )

    # -- remotes -------------------------------------------------------------------------------

    def remotes(self) -> list[str]:
        """Configured remote names, in git's order."""
        return self.run("remote").split()

    def remote_url(self, name: str) -> str:
        """The fetch URL of remote ``name`` (``insteadOf`` rewrites applied, as git fetches)."""
        names = self.remotes()
        if name not in names:
            raise BadInput(
                f"no git remote named {name!r} in {self.root} "
                f"(remotes: {', '.join(names) or 'none'})",
                hint="pass one of them with --remote",
            )
        return self.run("remote", "get-url", "--", name).strip()

    def pick_remote(self, preferred: str | None = None, *, to_push: bool = False) -> str:
        """``preferred`` if given, else ``forgejo``, else ``origin``, else the only remote.
        ``to_push``: the remote is where ``work land`` pushes, which ``--repo`` cannot replace."""
        names = self.remotes()
        if preferred is not None:
            if preferred not in names:
                raise BadInput(
                    f"no git remote named {preferred!r} in {self.root} "
                    f"(remotes: {', '.join(names) or 'none'})",
                    hint="pass one of them with --remote, or add it with `git remote add`",
                )
            return preferred
        for name in PREFERRED_REMOTES:
            if name in names:
                return name
        if len(names) == 1:
            return names[0]
        if not names and to_push:
            raise BadInput(
                f"the repository {self.root} has no git remote to land onto",
                hint="add the remote to push to (git remote add origin URL); "
                "--repo names only the Woodpecker repo",
            )
        if not names:
            raise BadInput(
                f"the repository {self.root} has no git remote, so its Woodpecker repo is unknown",
                hint="add a remote (git remote add origin URL), or pass --repo OWNER/NAME",
            )
        if to_push:
            raise BadInput(
                f"several git remotes and none is named forgejo or origin: {', '.join(names)}",
                hint="choose the one to land onto with --remote NAME",
            )
        raise BadInput(
            f"several git remotes and none is named forgejo or origin: {', '.join(names)}",
            hint="choose one with --remote NAME, or pass --repo OWNER/NAME",
        )

    def fetch(self, remote: str, *refspecs: str, timeout: float = NETWORK_TIMEOUT) -> None:
        """``git fetch remote refspec...``. A refspec the remote lacks is BadInput."""
        _refuse_odd(remote, "remote")
        for spec in refspecs:
            _refuse_odd(spec, "refspec")
        done = _git(
            self.root, "fetch", "--quiet", "--no-tags", "--", remote, *refspecs, timeout=timeout
        )
        if done.returncode == 0:
            return
        why = _stderr(done)
        if "couldn't find remote ref" in why:
            raise BadInput(f"git fetch {remote} {' '.join(refspecs)}: {why}")
        raise InfraError(
            f"git fetch {remote} failed: {why}",
            hint="check the remote's URL, the network and the credentials git uses",
        )

    def default_branch(self, remote: str) -> str:
        """The remote's default branch.

        From ``refs/remotes/<remote>/HEAD``, else asked of the remote (``ls-remote --symref``),
        else ``main`` or ``master``, whichever the remote-tracking branches have.
        """
        _refuse_odd(remote, "remote")
        prefix = f"refs/remotes/{remote}/"
        ref = self.run("symbolic-ref", "--quiet", f"{prefix}HEAD", check=False).strip()
        if ref.startswith(prefix):
            return ref.removeprefix(prefix)
        done = _git(
            self.root, "ls-remote", "--symref", "--", remote, "HEAD", timeout=NETWORK_TIMEOUT
        )
        match = re.search(r"^ref: refs/heads/(\S+)\tHEAD$", _text(done.stdout), re.MULTILINE)
        if done.returncode == 0 and match:
            return match.group(1)
        for name in ("main", "master"):
            if self._ok("rev-parse", "--verify", "--quiet", f"{prefix}{name}"):
                return name
        asked = "it names no HEAD branch" if done.returncode == 0 else _stderr(done)
        raise BadInput(
            f"cannot tell the default branch of remote {remote!r}: no {prefix}HEAD, "
            f"ls-remote: {asked}, and no {remote}/main or {remote}/master",
            hint=f"git fetch {remote} && git remote set-head {remote} --auto, "
            "or name the branch explicitly",
        )


# -- parsing remotes and --repo ------------------------------------------------------------------

_SCHEMES = frozenset({"http", "https", "ssh", "git", "git+ssh", "ssh+git"})
_SEGMENT = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]*")
# scp-like: [user@]host:path, where host may be [IPv6]; git's rule: a ':' before any '/'.
_SCP = re.compile(
    r"(?:(?P<user>[^@/\[\]]*)@)?(?P<host>\[[^\]/]*\]|[^:/\[\]@]*):(?P<path>.*)",
    re.S,
)
_GITHUB = frozenset({"github.com", "www.github.com"})


def _shown_url(text: str) -> str:
    """``text`` fit for a message: credentials masked, query and fragment dropped."""
    if "@" in text:  # everything up to the last '@' could be a password (even with a '/')
        before, after = text.rsplit("@", 1)
        scheme = re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", before)
        text = (scheme.group(0) if scheme else "") + "***@" + after
    for mark in "?#":
        if mark in text:
            text = text.split(mark, 1)[0] + mark + "***"
    return text


def _has_odd_chars(text: str) -> bool:
    return any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in text)


def _seg_name(segment: str) -> str:
    """A path segment for a message; one holding '@' or ':' might be a credential, so unnamed."""
    return "a path segment" if "@" in segment or ":" in segment else repr(segment)


def _slug_from_path(path: str, host: str, what: str, shown: str) -> str:
    try:
        segments = [unquote(s, errors="strict") for s in path.strip("/").split("/")]
    except UnicodeDecodeError:
        raise BadInput(f"{what} {shown!r} has an undecodable %-escape", hint=_SLUG_HINT) from None
    if segments and segments[-1].endswith(".git"):
        segments[-1] = segments[-1].removesuffix(".git")
    if "-" in segments:  # GitLab: /group/name/-/tree/main (a pasted browser URL)
        segments = segments[: segments.index("-")]
    if host.lower() in _GITHUB and len(segments) > 2 and all(segments[:2]):
        segments = segments[:2]  # GitHub repos are exactly owner/name: /o/r/tree/main
    if segments == [""] or not segments:
        raise BadInput(f"{what} {shown!r} has no path, so no OWNER/NAME", hint=_SLUG_HINT)
    if len(segments) == 1:
        raise BadInput(
            f"{what} {shown!r} names no owner: only {_seg_name(segments[0])}", hint=_SLUG_HINT
        )
    for segment in segments:
        if not segment:
            raise BadInput(f"{what} {shown!r} has an empty path segment", hint=_SLUG_HINT)
        if segment in {".", ".."} or not _SEGMENT.fullmatch(segment):
            raise BadInput(
                f"{what} {shown!r}: {_seg_name(segment)} is not a valid owner or repo name",
                hint=_SLUG_HINT,
            )
    return "/".join(segments)


def _parse_url(text: str, what: str) -> str:
    shown = _shown_url(text)
    if not text:
        raise BadInput(f"{what} is empty", hint=_SLUG_HINT)
    if _has_odd_chars(text):
        raise BadInput(f"{what} {shown!r} contains whitespace or control characters")
    if "://" in text:
        try:
            parts = urlsplit(text)
            parts.port  # noqa: B018 - validates the port
        except ValueError:
            raise BadInput(f"{what} {shown!r} is not a valid URL", hint=_SLUG_HINT) from None
        scheme = parts.scheme.lower()
        if scheme == "file":
            raise BadInput(
                f"{what} {shown!r} is a local file:// path; it names no owner on a forge",
                hint="pass --repo OWNER/NAME",
            )
        if scheme not in _SCHEMES:
            raise BadInput(
                f"{what} {shown!r}: scheme {scheme!r} is not one git uses for a forge "
                f"({', '.join(sorted(_SCHEMES))})",
                hint="pass --repo OWNER/NAME",
            )
        host = parts.hostname or ""
        if not host:
            raise BadInput(f"{what} {shown!r} has no host", hint=_SLUG_HINT)
        return _slug_from_path(parts.path, host, what, shown)
    if not re.match(r"[^/]*:", text):
        raise BadInput(
            f"{what} {shown!r} is a local path, not a URL or user@host:path; "
            "it names no owner on a forge",
            hint="pass --repo OWNER/NAME",
        )
    match = _SCP.fullmatch(text)
    if match is None:
        raise BadInput(f"{what} {shown!r} is not a valid user@host:path", hint=_SLUG_HINT)
    host = match.group("host").strip("[]")
    if not host:
        raise BadInput(f"{what} {shown!r} has no host before ':'", hint=_SLUG_HINT)
    return _slug_from_path(match.group("path"), host, what, shown)


def parse_repo_slug(url: str) -> str:
    """Woodpecker's ``owner/name`` from a git remote URL; nested groups keep every segment.

    https/http/git/ssh URLs (ports, credentials, ``.git``, trailing ``/``) and scp-like
    ``user@host:owner/name.git``. Raises BadInput naming the URL with credentials masked.
    """
    return _parse_url(url.strip(), "git remote URL")


def parse_repo_flag(value: str) -> str:
    """A user's ``--repo``: ``owner/name``, ``group/sub/name``, or a pasted clone URL."""
    text = value.strip()
    shown = _shown_url(text)
    if "://" in text or re.match(r"[^/]*:", text):
        return _parse_url(text, "--repo")
    if not text:
        raise BadInput("--repo is empty", hint=_SLUG_HINT)
    if _has_odd_chars(text):
        raise BadInput(
            f"--repo {shown!r} contains whitespace or control characters", hint=_SLUG_HINT
        )
    segments = text.split("/")
    if len(segments) == 1:
        raise BadInput(
            f"--repo {shown!r} has no owner: Woodpecker names repos OWNER/NAME", hint=_SLUG_HINT
        )
    if not all(segments):
        raise BadInput(f"--repo {shown!r} has an empty part around a '/'", hint=_SLUG_HINT)
    segments[-1] = segments[-1].removesuffix(".git")
    if not segments[-1]:
        raise BadInput(f"--repo {shown!r} has no repo name after the owner", hint=_SLUG_HINT)
    for segment in segments:
        if segment in {".", ".."} or not _SEGMENT.fullmatch(segment):
            raise BadInput(
                f"--repo {shown!r}: {_seg_name(segment)} is not a valid owner or repo name",
                hint=_SLUG_HINT,
            )
    return "/".join(segments)
