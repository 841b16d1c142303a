"""Git facts about the repo under test: commits, remotes, files at a commit, ancestry.

Runs ``git`` as a subprocess with a list of arguments (no shell), ``LC_ALL=C`` and no prompts;
user-supplied refs are checked before they reach git and passed after ``--end-of-options``.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from pytest_homelab.outcomes import BadInput, NotFound

PREFERRED_REMOTES = ("forgejo", "origin")
_SHA = re.compile(r"[0-9a-f]{40}")
_SCP = re.compile(r"^(?:[^@/\s]+@)?(?P<host>[^:/\s]+):(?P<path>(?!/)[^\s]+)$")


class GitError(BadInput):
    pass


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        LC_ALL="C", LANG="C", GIT_TERMINAL_PROMPT="0", GIT_ASKPASS="true", GIT_OPTIONAL_LOCKS="0"
    )
    return env


def _mask(url: str) -> str:
    """The URL with any credentials replaced, for messages."""
    return re.sub(r"(?<=://)[^@/\s]+@", "***@", url.strip())


def _git(cwd: Path, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            env=_env(),
            check=False,
            timeout=timeout,
        )
    except FileNotFoundError:
        raise BadInput("git is not installed", hint="install git (apt-get install git)") from None
    except NotADirectoryError:
        raise BadInput(f"{cwd} is not a directory") from None
    except subprocess.TimeoutExpired:
        raise GitError(f"git {args[0]} did not finish within {timeout:.0f}s") from None


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


@dataclass(frozen=True)
class GitRepo:
    root: Path

    @classmethod
    def discover(cls, path: Path) -> GitRepo:
        done = _git(path, "rev-parse", "--show-toplevel")
        if done.returncode != 0:
            raise BadInput(
                f"not inside a git repository (cwd={path})",
                hint="run inside the repo's checkout, or pass --repo OWNER/NAME and a commit sha",
            )
        return cls(Path(_text(done.stdout).strip()))

    def run(self, *args: str, check: bool = True, timeout: float = 120.0) -> str:
        done = _git(self.root, *args, timeout=timeout)
        if check and done.returncode != 0:
            stderr = _mask(_text(done.stderr).strip())[:400]
            raise GitError(f"git {' '.join(args[:2])} failed: {stderr}")
        return _text(done.stdout)

    def _ok(self, *args: str) -> bool:
        return _git(self.root, *args).returncode == 0

    def resolve_commit(self, ref: str) -> str:
        """HEAD, a branch, a tag, a short or full sha → the full 40-hex sha of the commit."""
        text = ref.strip()
        if not text or text.startswith("-") or any(c.isspace() or ord(c) < 32 for c in text):
            raise BadInput(
                f"{ref!r} is not a commit reference", hint="give HEAD, a branch, a tag or a sha"
            )
        verify = ("rev-parse", "--verify", "--quiet", "--end-of-options", f"{text}^{{commit}}")
        sha = self.run(*verify, check=False).strip()
        if _SHA.fullmatch(sha):
            return sha
        if re.fullmatch(r"[0-9a-fA-F]{4,39}", text) and self._ambiguous(text):
            raise BadInput(
                f"short sha {text} is ambiguous in {self.root}",
                hint="give more characters of the sha",
            )
        raise BadInput(
            f"unknown commit {text!r} in {self.root}",
            hint="check the name, or git fetch if the commit was made elsewhere",
        )

    def _ambiguous(self, prefix: str) -> bool:
        found = self.run("rev-parse", "--disambiguate=" + prefix.lower(), check=False)
        return len(found.split()) > 1

    def remotes(self) -> list[str]:
        return self.run("remote").split()

    def remote_url(self, name: str) -> str:
        if name not in self.remotes():
            raise BadInput(f"no git remote named {name!r} in {self.root}")
        return self.run("remote", "get-url", "--", name).strip()

    def pick_remote(self, preferred: str | None = None) -> str:
        """``preferred``, else forgejo, else origin, else the only remote."""
        names = self.remotes()
        if preferred is not None:
            if preferred not in names:
                raise BadInput(
                    f"no git remote named {preferred!r} (remotes: {', '.join(names) or 'none'})",
                    hint="pass one of them with --remote",
                )
            return preferred
        for name in PREFERRED_REMOTES:
            if name in names:
                return name
        if len(names) == 1:
            return names[0]
        if not names:
            raise BadInput(
                f"the repo {self.root} has no git remote, so its name is unknown",
                hint="add a remote, or pass --repo OWNER/NAME",
            )
        raise BadInput(
            f"several git remotes and none is forgejo or origin: {', '.join(names)}",
            hint="choose one with --remote NAME, or pass --repo OWNER/NAME",
        )

    def commit_time(self, sha: str) -> int:
        return int(self.run("show", "-s", "--format=%ct", sha, "--").strip() or 0)

    def is_ancestor(self, ancestor: str, descendant: str) -> bool | None:
        """Whether ``ancestor`` is in ``descendant``'s history; None if either is unknown here."""
        for sha in (ancestor, descendant):
            if not _SHA.fullmatch(sha) or not self._ok("cat-file", "-e", f"{sha}^{{commit}}"):
                return None
        return self._ok("merge-base", "--is-ancestor", ancestor, descendant)

    def show_file(self, commit: str, path: str) -> bytes:
        """The file as committed (never the working tree)."""
        done = _git(self.root, "show", f"{commit}:{path}")
        if done.returncode != 0:
            raise NotFound(
                f"no file {path} at {commit}",
                hint="commit the file, or check the path and the commit",
            )
        return done.stdout

    def fetch(self, remote: str, *refspecs: str, timeout: float = 300.0) -> None:
        self.run("fetch", "--quiet", "--", remote, *refspecs, timeout=timeout)

    def default_branch(self, remote: str) -> str:
        """The remote's default branch: its HEAD, else main or master, whichever it has."""
        ref = self.run("symbolic-ref", "--quiet", f"refs/remotes/{remote}/HEAD", check=False)
        if ref.strip():
            return ref.strip().removeprefix(f"refs/remotes/{remote}/")
        listing = self.run("ls-remote", "--symref", "--", remote, "HEAD", check=False)
        match = re.search(r"^ref: refs/heads/(\S+)\s+HEAD", listing, re.MULTILINE)
        if match:
            return match.group(1)
        for name in ("main", "master"):
            if self._ok("rev-parse", "--verify", "--quiet", f"refs/remotes/{remote}/{name}"):
                return name
        raise BadInput(
            f"cannot tell the default branch of remote {remote!r}",
            hint="git fetch it, or name the branch explicitly",
        )


def parse_repo_slug(url: str) -> str:
    """``owner/name`` (nested groups kept) from a git remote URL. Raises BadInput."""
    text = url.strip()
    shown = _mask(text)
    if not text or any(c.isspace() or ord(c) < 32 for c in text):
        raise BadInput(f"git remote URL {shown!r} is empty or contains whitespace")
    if "://" in text:
        parts = urlsplit(text)
        if parts.scheme not in {"http", "https", "ssh", "git", "git+ssh", "ssh+git"}:
            raise BadInput(
                f"git remote URL {shown!r}: scheme {parts.scheme!r} names no forge repo",
                hint="pass --repo OWNER/NAME",
            )
        if not parts.hostname:
            raise BadInput(f"git remote URL {shown!r} has no host")
        path = parts.path
    else:
        match = _SCP.match(text)
        if not match:
            raise BadInput(
                f"git remote URL {shown!r} is not a URL or user@host:path",
                hint="pass --repo OWNER/NAME",
            )
        path = match.group("path")
    segments = path.strip("/").removesuffix(".git").split("/")
    if len(segments) < 2 or not all(segments) or any(s in {".", ".."} for s in segments):
        raise BadInput(
            f"git remote URL {shown!r} does not name OWNER/NAME", hint="pass --repo OWNER/NAME"
        )
    return "/".join(segments)


_SLUG_PART = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]*")


def parse_repo_flag(value: str) -> str:
    """A user's ``--repo``: ``owner/name``, ``group/sub/name``, or a pasted URL."""
    text = value.strip()
    if "://" in text or re.match(r"^[^/\s]+@[^:\s]+:", text):
        return parse_repo_slug(text)
    segments = text.removesuffix(".git").split("/")
    if (
        len(segments) < 2
        or not all(_SLUG_PART.fullmatch(s) for s in segments)
        or any(s in {".", ".."} for s in segments)
    ):
        raise BadInput(
            f"--repo {text!r} is not OWNER/NAME",
            hint="give the Woodpecker repo as OWNER/NAME, e.g. homelab/app",
        )
    return "/".join(segments)
