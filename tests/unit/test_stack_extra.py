"""What `runway stack up` needs at run time is the `stack` extra (`pip install 'runway[stack]'`),
which the Makefile installs and the missing-S3 error names; `dev` includes it."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path

import pytest

from config.settings import Settings
from stack.errors import PrerequisiteMissing
from stack.s3 import S3Service

ROOT = Path(__file__).resolve().parents[2]


def test_the_stack_extra_and_who_installs_it() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert [re.split(r"[<>=]", d)[0] for d in extras["stack"]] == ["moto[server]"]
    assert "runway[stack]" in extras["dev"]
    assert not any(d.startswith("moto") for d in extras["dev"])  # one place says what S3 needs
    assert "pip install -q -e '.[stack,dev]'" in (ROOT / "Makefile").read_text()


def test_a_missing_moto_server_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "flask" else real(name, *a)
    )
    with pytest.raises(PrerequisiteMissing) as raised:
        S3Service(Settings()).check_prerequisites()
    assert "pip install 'runway[stack]'" in str(raised.value)
