"""A landing session raises the young generation's collection threshold while it runs (the
figures are benchmarks/' business, P3 and P6) and puts it back after: in-process sessions (the
CLI's, pytester's, a user's own code around ``pytest.main``) leave the interpreter as it was."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from pytest_homelab.cli import main
from pytest_homelab.core.collector import YOUNG_THRESHOLD, fewer_collections
from tests.gitenv import landing_suite


@pytest.fixture(autouse=True)
def thresholds() -> Iterator[None]:
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)  # CPython's defaults, whatever the test runner set
    yield
    gc.set_threshold(*before)


def test_the_young_threshold_is_raised_and_put_back() -> None:
    restore = fewer_collections()
    assert gc.get_threshold() == (YOUNG_THRESHOLD, 10, 10)
    restore()
    assert gc.get_threshold() == (700, 10, 10)


@pytest.mark.parametrize(
    "given",
    [
        (0, 10, 10),  # a disabled collector (set_threshold(0)) stays disabled
        (YOUNG_THRESHOLD * 4, 5, 5),  # never lowered
    ],
)
def test_a_threshold_the_user_chose_is_kept(given: tuple[int, int, int]) -> None:
    gc.set_threshold(*given)
    restore = fewer_collections()
    assert gc.get_threshold() == given
    restore()
    assert gc.get_threshold() == given


def test_a_threshold_set_meanwhile_is_left_as_it_is() -> None:
    restore = fewer_collections()
    gc.set_threshold(5000, 10, 10)  # a check or a plugin chose its own
    restore()
    assert gc.get_threshold() == (5000, 10, 10)


def test_a_landing_session_runs_with_it_and_puts_it_back(pytester: pytest.Pytester) -> None:
    checks = landing_suite(
        pytester.path,
        "import gc\nimport pytest\n\n@pytest.mark.ci\ndef test_green(homelab_landing):\n"
        f"    assert gc.get_threshold()[0] == {YOUNG_THRESHOLD}\n",
    )
    (pytester.path / "test_other.py").write_text(
        "import gc\n\ndef test_plain():\n    assert gc.get_threshold()[0] == 700\n"
    )
    server = ("--woodpecker-server", "https://ci.example.test")  # never dialled here
    pytester.runpytest(str(checks), "-p", "no:cacheprovider", *server).assert_outcomes(passed=1)
    assert gc.get_threshold() == (700, 10, 10)
    other = pytester.runpytest(str(pytester.path / "test_other.py"), "-p", "no:cacheprovider")
    other.assert_outcomes(passed=1)  # not a landing suite: the interpreter's own settings


def test_the_cli_puts_it_back(capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[int] = []
    import pytest_homelab.cli as cli

    def verb(_args: object) -> int:
        seen.append(gc.get_threshold()[0])
        return 0

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cli, "_run", lambda handler, args, verb_name, as_json: verb(args))
        assert main(["ci", "status"]) == 0
    assert seen == [YOUNG_THRESHOLD]
    assert gc.get_threshold() == (700, 10, 10)
