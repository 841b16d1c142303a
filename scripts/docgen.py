"""The generated parts of docs/: the options, deploy.json's fields and the CLI, from the code.

Each generated section sits between two marker comments in a hand-written page. Run
``python -m scripts.docgen`` to rewrite them, or ``--check`` to list stale pages.
No pytest here: this module only reads :data:`~pytest_homelab.core.settings.OPTIONS`, the shipped
JSON Schema and :func:`~pytest_homelab.cli.build_parser`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_homelab.cli import EXIT_CODES, build_parser
from pytest_homelab.core.manifest import schema
from pytest_homelab.core.outcomes import (
    EXIT_SUCCESS,
    OUTCOME_TYPES,
    SKIPPED_BY_TEKTON,
    SUCCESS_OUTCOMES,
    HomelabError,
    fold_exit_codes,
)
from pytest_homelab.core.settings import OPTIONS, OPTIONS_BY_KEY, Option
from pytest_homelab.report.verdict import VERDICTS

DOCS = Path(__file__).resolve().parents[1] / "docs"
COMMAND = "python -m scripts.docgen"
PHASE_TITLES = {
    "general": "General",
    "ci": "The ci phase (Woodpecker)",
    "rollout": "The rollout phase (Kubernetes)",
    "smoke": "The smoke phase (the service answers with the commit)",
    "e2e": "The dev end-to-end run (D601)",
    "land": "Landing (`homelab work land`)",
}
# CLI destinations that set an option under another name.
CLI_ALIASES = {"sha": "commit", "wait_ms": "e2e_wait"}
_NOTES = {"wait_ms": " (milliseconds)"}
_DEFAULT = re.compile(r"\s*\(default: ([^()]*(?:\([^()]*\)[^()]*)*)\)")
_MARKER = re.compile(r"<!-- (BEGIN|END) GENERATED ([a-z-]+)(?:: [^>]*)? -->")


def begin_marker(name: str) -> str:
    return f"<!-- BEGIN GENERATED {name}: {COMMAND} rewrites this section; do not edit -->"


def end_marker(name: str) -> str:
    return f"<!-- END GENERATED {name} -->"


def anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces to '-'."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _code(text: object) -> str:
    value = str(text)
    fence = "``" if "`" in value else "`"
    pad = " " if value.startswith("`") or value.endswith("`") else ""
    return f"{fence}{pad}{value}{pad}{fence}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _prose(text: str) -> str:
    """Plain text for Markdown: ``<name>`` would otherwise be taken for an HTML tag."""
    return text.replace("<", "\\<")


def _sentence(text: str) -> str:
    text = _prose(text.strip())
    if text.split(" ")[0].isalpha():
        text = text[0].upper() + text[1:]
    return text if text.endswith((".", ":")) else text + "."


# -- the CLI's verbs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Verb:
    """One leaf command of ``homelab``, like ``("ci", "status")``."""

    path: tuple[str, ...]
    parser: argparse.ArgumentParser

    @property
    def name(self) -> str:
        return " ".join(self.path)

    def arguments(self) -> list[argparse.Action]:
        return [a for a in self.parser._actions if a.help != argparse.SUPPRESS and a.dest != "help"]


def _subcommands(parser: argparse.ArgumentParser) -> Mapping[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            choices: Mapping[str, argparse.ArgumentParser] = action.choices
            return choices
    return {}


def verbs(parser: argparse.ArgumentParser | None = None) -> list[Verb]:
    """Every leaf command, depth first in the parser's order."""
    parser = parser or build_parser()

    def walk(node: argparse.ArgumentParser, path: tuple[str, ...]) -> Iterator[Verb]:
        children = _subcommands(node)
        if not children:
            yield Verb(path, node)
        for name, child in children.items():
            yield from walk(child, (*path, name))

    return list(walk(parser, ()))


def groups(parser: argparse.ArgumentParser | None = None) -> list[tuple[str, str]]:
    """The top-level verbs and their one-line descriptions."""
    parser = parser or build_parser()
    return [(name, child.description or "") for name, child in _subcommands(parser).items()]


def option_key(action: argparse.Action) -> str | None:
    """The setting an argument sets, if any."""
    key = CLI_ALIASES.get(action.dest, action.dest)
    return key if key in OPTIONS_BY_KEY else None


def _argument_name(action: argparse.Action) -> str:
    if not action.option_strings:
        return str(action.metavar or action.dest.upper())
    flag = max(action.option_strings, key=len)
    if action.nargs == 0:
        return flag
    metavar = action.metavar or action.dest.upper()
    return f"{flag} {metavar}"


def _synopsis(verb: Verb) -> str:
    parts = ["homelab", *verb.path]
    has_options = False
    for action in verb.arguments():
        if action.option_strings:
            has_options = True
            continue
        name = _argument_name(action)
        if action.nargs == "?":
            parts.append(f"[{name}]")
        elif action.nargs == "*":
            parts.append(f"[{name} ...]")
        else:
            parts.append(name)
    if has_options:
        parts.insert(1 + len(verb.path), "[OPTIONS]")
    return " ".join(parts)


def _exclusive(verb: Verb, action: argparse.Action) -> list[str]:
    others: list[str] = []
    for group in verb.parser._mutually_exclusive_groups:
        if action in group._group_actions:
            others += [max(a.option_strings, key=len) for a in group._group_actions if a != action]
    return others


def _argument_help(action: argparse.Action, verb: Verb) -> str:
    key = option_key(action)
    if key is not None and action.dest == key:
        text = OPTIONS_BY_KEY[key].help
    else:
        text = str(action.help or "")
    text = _sentence(text)
    shown = action.default not in (None, False, argparse.SUPPRESS)
    if key is None and shown and "default" not in text.lower():
        text += f" Default: {_code(action.default)}."
    others = _exclusive(verb, action)
    if others:
        text += f" Not with {', '.join(_code(o) for o in others)}."
    return text


def _setting_cell(action: argparse.Action) -> str:
    key = option_key(action)
    if key is None:
        return "—"
    option = OPTIONS_BY_KEY[key]
    parts = [f"[{_code(key)}](configuration.md#{anchor(_option_heading(option))})"]
    parts += [_code(env) for env in option.env]
    return ", ".join(parts) + _NOTES.get(action.dest, "")


def render_verbs() -> str:
    """The reference of every verb: synopsis, what it does, every argument and its setting."""
    parser = build_parser()
    lines: list[str] = []
    titles = dict(groups(parser))
    seen_groups: set[str] = set()
    for verb in verbs(parser):
        top = verb.path[0]
        if len(verb.path) > 1 and top not in seen_groups:
            seen_groups.add(top)
            lines += [f"### `homelab {top}`", "", _sentence(titles[top]), ""]
        level = "####" if len(verb.path) > 1 else "###"
        lines += [f"{level} `homelab {verb.name}`", "", _sentence(verb.parser.description or "")]
        lines += ["", "```", _synopsis(verb), "```", ""]
        lines += ["| argument | meaning | setting, environment |", "|---|---|---|"]
        for action in verb.arguments():
            lines.append(
                f"| {_cell(_code(_argument_name(action)))} | {_cell(_argument_help(action, verb))}"
                f" | {_setting_cell(action)} |"
            )
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def exit_code_order() -> list[int]:
    """Exit codes from the one that wins a fold to the one that loses every fold."""
    codes = sorted({cls.exit_code for cls in OUTCOME_TYPES.values()} | {EXIT_SUCCESS})
    order: list[int] = []
    rest = list(codes)
    while rest:
        winner = fold_exit_codes(rest)
        order.append(winner)
        rest.remove(winner)
    return order


def render_exit_codes() -> str:
    """The exit-code contract: each code, its verdict word, the outcomes that give it."""
    lines = ["| exit | verdict | outcomes (JUnit element) | meaning |", "|---|---|---|---|"]
    for code in sorted(exit_code_order()):
        classes = [
            cls
            for cls in OUTCOME_TYPES.values()
            if cls.exit_code == code and cls is not HomelabError
        ]
        if code == EXIT_SUCCESS:
            outcomes = ", ".join(
                f"{_code(o)} ({'skipped' if o == SKIPPED_BY_TEKTON else 'passed'})"
                for o in sorted(SUCCESS_OUTCOMES)
            )
            meaning = (
                "Every check passed (a dev e2e run that was only dispatched counts; so do the "
                "run's TaskRuns Tekton skipped or whose failure it tolerated)."
            )
        else:
            outcomes = ", ".join(f"{_code(c.outcome)} ({c.junit})" for c in classes)
            meaning = " ".join(_sentence((c.__doc__ or "").strip()) for c in classes)
        lines.append(f"| {code} | {VERDICTS.get(code, '')} | {outcomes} | {_cell(meaning)} |")
    order = " > ".join(str(code) for code in exit_code_order())
    lines += ["", f"When a session has several outcomes, the exit code folds as {order}."]
    lines += ["", "`homelab --help` says the same:", "", "```", EXIT_CODES, "```"]
    return "\n".join(lines) + "\n"


# -- the options -----------------------------------------------------------------------------


def _duration(seconds: float) -> str:
    whole = int(seconds)
    if whole != seconds or whole == 0:
        return f"{seconds:g}s"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(hours, "h"), (minutes, "m"), (secs, "s")]
    return "".join(f"{n}{unit}" for n, unit in parts if n)


def split_help(option: Option) -> tuple[str, str | None]:
    """The option's help without its ``(default: …)`` part, and that part."""
    match = _DEFAULT.search(option.help)
    if match is None:
        return option.help, None
    return (option.help[: match.start()] + option.help[match.end() :]).strip(), match.group(1)


def default_text(option: Option) -> str:
    """The default as a reader wants it: a value, or what happens when the option is unset."""
    _, described = split_help(option)
    value = option.default
    if value is None:
        return _prose(described) if described else "not set"
    if isinstance(value, bool):
        return _code(str(value).lower())
    if isinstance(value, float):
        return _code(_duration(value))
    if isinstance(value, tuple):
        return _code(",".join(map(str, value))) if value else "none"
    return _code(value)


def cli_flags(option: Option) -> list[tuple[str, list[str]]]:
    """How the ``homelab`` verbs name this option (Markdown), each with the verbs that take it."""
    found: dict[str, list[str]] = {}
    for verb in verbs():
        for action in verb.arguments():
            if option_key(action) == option.key:
                name = _code(_argument_name(action).split(" ")[0])
                if not action.option_strings:
                    name += " argument"
                found.setdefault(name + _NOTES.get(action.dest, ""), []).append(verb.name)
    return list(found.items())


def _option_heading(option: Option) -> str:
    return option.key


def _value(option: Option) -> str:
    return "`true`/`false`, or the bare flag" if option.boolean else _code(option.metavar)


def render_options() -> str:
    """Every option, grouped by phase: its names in each place, default and meaning."""
    lines: list[str] = []
    phases = list(dict.fromkeys(o.phase for o in OPTIONS))
    for phase in phases:
        lines += [f"### {PHASE_TITLES.get(phase, phase)}", ""]
        for option in (o for o in OPTIONS if o.phase == phase):
            meaning, _ = split_help(option)
            lines += [f"#### {_option_heading(option)}", "", _sentence(meaning), ""]
            file_name = (
                "— (not allowed in a settings file)"
                if option.key == "commit"
                else _code(option.key) + (" (also per environment)" if option.per_env else "")
            )
            if option.user_only:
                file_name += (
                    " in the user's `~/.config/homelab/config.toml` only (a repository's file"
                    " only when the user trusts it)"
                )
            envs = [_code(option.env[0])] + [f"{_code(e)} (alias)" for e in option.env[1:]]
            flags = [f"{flag} ({', '.join(names)})" for flag, names in cli_flags(option)]
            lines += [
                "| where | name |",
                "|---|---|",
                f"| pytest | {_code(option.flag)} {_value(option)} |",
                f"| `homelab` | {', '.join(flags) if flags else '—'} |",
                f"| environment | {', '.join(envs) if envs else '—'} |",
                f"| settings file | {file_name} |",
                f"| default | {default_text(option)} |",
                "",
            ]
    return "\n".join(lines).rstrip() + "\n"


def render_options_summary() -> str:
    """One table of every option: the quick lookup before the detailed entries."""
    lines = [
        "| setting | pytest flag | environment | default |",
        "|---|---|---|---|",
    ]
    for option in OPTIONS:
        link = f"[{option.key}](#{anchor(_option_heading(option))})"
        env = _code(option.env[0]) if option.env else "—"
        lines.append(f"| {link} | {_code(option.flag)} | {env} | {_cell(default_text(option))} |")
    per_env = ", ".join(_code(o.key) for o in OPTIONS if o.per_env)
    lines += ["", f"Per-environment settings (`[tool.homelab.environments.<env>]`): {per_env}."]
    return "\n".join(lines) + "\n"


# -- deploy.json -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """One place in a deploy.json document, with its schema node ($ref resolved)."""

    path: str
    node: Mapping[str, Any]
    required: bool | None  # None: an entry of a map or list, not a named key
    key_rule: str | None = None  # the rule for map keys (environment names)


_PLACEHOLDERS = {"environment": "<env>", "service": "<n>"}


def _resolve(node: Mapping[str, Any], root: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """The node merged with the definition it references (its own keys win), and that name."""
    ref = node.get("$ref")
    if not isinstance(ref, str):
        return dict(node), ""
    name = ref.removeprefix("#/$defs/")
    target, _ = _resolve(root["$defs"][name], root)
    local = {k: v for k, v in node.items() if k != "$ref"}
    return {**target, **local}, name


def schema_fields(doc: Mapping[str, Any] | None = None) -> list[Field]:
    """Every field of the deploy.json schema, depth first, in the schema's order."""
    root = doc if doc is not None else schema()
    fields: list[Field] = []

    def visit(node: Mapping[str, Any], path: str) -> None:
        required = node.get("required", [])
        for name, child in node.get("properties", {}).items():
            merged, _ = _resolve(child, root)
            child_path = f"{path}.{name}" if path else name
            fields.append(Field(child_path, merged, name in required))
            visit_children(merged, child_path)

    def visit_children(node: Mapping[str, Any], path: str) -> None:
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            merged, ref = _resolve(extra, root)
            names, _ = _resolve(node.get("propertyNames", {}), root)
            entry = f"{path}.{_PLACEHOLDERS.get(ref, '<name>')}"
            fields.append(Field(entry, merged, None, names.get("x-rule")))
            visit(merged, entry)
        items = node.get("items")
        if isinstance(items, dict):
            merged, ref = _resolve(items, root)
            entry = f"{path}[{_PLACEHOLDERS.get(ref, '<n>')}]"
            fields.append(Field(entry, merged, None))
            visit(merged, entry)
        if "properties" in node:
            visit(node, path)

    visit(root, "")
    return fields


def type_text(node: Mapping[str, Any]) -> str:
    if "const" in node:
        return f"the constant {_code(json.dumps(node['const']))}"
    if "enum" in node:
        return "one of " + ", ".join(_code(json.dumps(v)) for v in node["enum"])
    kind = node.get("type", "any")
    if kind == "array" and isinstance(node.get("items"), dict):
        return "array of objects"
    return str(kind)


_CONSTRAINTS = ("pattern", "not", "minLength", "maxLength", "minimum", "maximum", "minProperties")


def _constraints(node: Mapping[str, Any]) -> list[str]:
    found = []
    for key in _CONSTRAINTS:
        if key in node:
            value = node[key]
            shown = value if isinstance(value, str | int) else json.dumps(value)
            found.append(f"{_code(key)} {_code(shown)}")
    return found


def _required_text(field: Field) -> str:
    if field.required is None:
        return "—"
    return "yes" if field.required else "no"


def render_deploy_json() -> str:
    """Every field of deploy.json: JSON path, type, required, rule, description, examples."""
    root = schema()
    fields = schema_fields(root)
    lines = [
        _sentence(str(root.get("description", ""))),
        "",
        f"Schema: `pytest_homelab/core/deploy.schema.json` (JSON Schema {_dialect(root)}).",
        "",
        f"- Type: {type_text(root)}",
        f"- Rule: {_prose(str(root.get('x-rule', '')))}",
        "",
        "| JSON path | type | required |",
        "|---|---|---|",
    ]
    for field in fields:
        link = f"[{_code(field.path)}](#{anchor(_code(field.path))})"
        kind = _cell(type_text(field.node))
        lines.append(f"| {_cell(link)} | {kind} | {_required_text(field)} |")
    lines.append("")
    for field in fields:
        node = field.node
        lines += [f"### {_code(field.path)}", "", _sentence(str(node.get("description", ""))), ""]
        lines.append(f"- Type: {type_text(node)}")
        lines.append(f"- Required: {_required_text(field)}")
        if field.key_rule:
            lines.append(f"- Key: {_prose(field.key_rule)}")
        if "default" in node:
            lines.append(f"- Default: {_code(json.dumps(node['default']))}")
        if "x-rule" in node:
            lines.append(f"- Rule: {_prose(node['x-rule'])}")
        constraints = _constraints(node)
        if constraints:
            lines.append(f"- Schema: {', '.join(constraints)}")
        if node.get("examples"):
            shown = ", ".join(_code(json.dumps(e)) for e in node["examples"])
            lines.append(f"- Examples: {shown}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _dialect(root: Mapping[str, Any]) -> str:
    uri = str(root.get("$schema", ""))
    match = re.search(r"draft/([\d-]+)/", uri)
    return f"draft {match.group(1)}" if match else uri


# -- the pages ---------------------------------------------------------------------------------

Renderer = Callable[[], str]

SECTIONS: Mapping[str, Mapping[str, Renderer]] = {
    "configuration.md": {"options-summary": render_options_summary, "options": render_options},
    "deploy-json.md": {"deploy-json": render_deploy_json},
    "cli.md": {"exit-codes": render_exit_codes, "verbs": render_verbs},
}


def replace_sections(text: str, renderers: Mapping[str, Renderer], source: str = "page") -> str:
    """``text`` with each named section's body replaced by its renderer's output."""
    for name, render in renderers.items():
        begin, end = begin_marker(name), end_marker(name)
        found = [m for m in _MARKER.finditer(text) if m.group(2) == name]
        kinds = [m.group(1) for m in found]
        if kinds != ["BEGIN", "END"]:
            raise ValueError(
                f"{source}: generated section {name!r} needs exactly one {begin!r} line "
                f"followed by one {end!r} line"
            )
        start, stop = found[0], found[1]
        text = text[: start.start()] + f"{begin}\n\n{render()}\n{end}" + text[stop.end() :]
    return text


def stale(docs: Path = DOCS) -> list[Path]:
    """The pages whose generated sections differ from what the code produces now."""
    changed = []
    for name, renderers in SECTIONS.items():
        path = docs / name
        text = path.read_text(encoding="utf-8")
        if replace_sections(text, renderers, str(path)) != text:
            changed.append(path)
    return changed


def write(docs: Path = DOCS) -> list[Path]:
    """Rewrite every generated section; return the pages that changed."""
    changed = []
    for name, renderers in SECTIONS.items():
        path = docs / name
        text = path.read_text(encoding="utf-8")
        new = replace_sections(text, renderers, str(path))
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed.append(path)
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=COMMAND, description="Rewrite the generated sections of docs/ from the code."
    )
    parser.add_argument("--docs", type=Path, default=DOCS, help=f"the docs directory ({DOCS})")
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if a page is out of date"
    )
    args = parser.parse_args(argv)
    try:
        paths = stale(args.docs) if args.check else write(args.docs)
    except (OSError, ValueError) as exc:
        print(f"docgen: {exc}", file=sys.stderr)
        return 2
    verb = "out of date" if args.check else "rewritten"
    for path in paths:
        print(f"{path}: {verb}")
    return 1 if args.check and paths else 0


if __name__ == "__main__":
    sys.exit(main())
