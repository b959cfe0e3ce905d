"""The hypothesis profile chosen by HYPOTHESIS_PROFILE reaches every test module."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent

COUNTER = '''
from hypothesis import given, strategies as st

CALLS = []

@given(st.integers())
def test_count(x):
    CALLS.append(x)

def test_zz_report():
    print(f"\\nCALLS={len(CALLS)}")
'''


def test_no_module_overrides_the_profile():
    """Only tests/conftest.py registers or loads a profile, and no test pins max_examples."""
    offenders = []
    for path in TESTS.rglob("*.py"):
        if path == TESTS / "conftest.py" or path == Path(__file__).resolve():
            continue
        text = path.read_text()
        if re.search(r"load_profile|register_profile|max_examples", text):
            offenders.append(str(path.relative_to(TESTS)))
    assert offenders == []


def _examples_run(tmp_path: Path, profile: str) -> int:
    shutil.copy(TESTS / "conftest.py", tmp_path / "conftest.py")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "test_counter.py").write_text(COUNTER)
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "HYPOTHESIS_PROFILE")}
    env["HYPOTHESIS_PROFILE"] = profile
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                          "--rootdir", str(tmp_path), str(sub)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    return int(re.search(r"CALLS=(\d+)", out.stdout).group(1))


def test_thorough_profile_gives_1000_examples_in_a_nested_module(tmp_path):
    assert _examples_run(tmp_path, "thorough") == 1000


def test_default_profile_gives_60_examples(tmp_path):
    assert _examples_run(tmp_path, "default") == 60
