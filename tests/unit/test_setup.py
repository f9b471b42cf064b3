"""The set-up does not drift: one lock pins every package, and the package installs a console script."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PINNED = re.compile(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==[^=\s]+$")


def _names(path: Path) -> list[str]:
    lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    return [re.split(r"[\[=<>!~ ]", line)[0] for line in lines if line]


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_the_lock_pins_every_package_exactly_and_holds_every_requirement():
    lock = [line for line in (REPO / "requirements.lock").read_text().splitlines() if line and not line.startswith("#")]
    assert lock and all(PINNED.match(line) for line in lock), [line for line in lock if not PINNED.match(line)]
    locked = {_canonical(PINNED.match(line).group(1)) for line in lock}
    wanted = {_canonical(n) for f in ("requirements.txt", "requirements-dev.txt") for n in _names(REPO / f)}
    assert wanted <= locked, f"not in requirements.lock: {sorted(wanted - locked)} (run make lock)"


def test_make_installs_from_the_lock_and_lints_before_the_tests():
    makefile = (REPO / "Makefile").read_text()
    assert "-r $(LOCK)" in makefile and "LOCK := requirements.lock" in makefile
    assert re.search(r"^test: .*\blint\b", makefile, re.M) and "ruff check" in makefile


def test_the_console_script_runs_the_same_commands():
    script = Path(sys.executable).parent / "inceptionism"
    assert script.exists(), "make install installs the package (pip install -e .) with its console script"
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0
    for command in ("models", "layers", "classify", "dream", "zoom"):
        assert command in out.stdout
