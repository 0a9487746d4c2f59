"""The commands the README and docs/ give compose and validate: a key they name that the
schema lacks, or a value it refuses, fails here rather than for the reader."""

import re
import shlex
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser

from conftest import composing
from gophernet_jax.config import validate

TOP = Path(__file__).resolve().parent.parent
DOCS = [TOP / "README.md", *sorted((TOP / "docs").glob("*.md")), TOP / "data" / "README.md"]


def documented_overrides() -> list[tuple[str, list[str]]]:
    """Each `python -m gophernet_jax ...` of the docs, as the overrides of its first job: a
    sweep's first value, a search range left to its search, Hydra's own keys left out."""
    parser = OverridesParser.create()
    found = []
    for doc in DOCS:
        text = doc.read_text().replace("\\\n", " ")
        for match in re.finditer(r"python -m gophernet_jax((?: [^\n`#|]*)?)", text):
            words = shlex.split(match.group(1))
            overrides = []
            for word in words:
                if "=" not in word or word.startswith(("-", "hydra.", "hydra/")):
                    continue
                override = parser.parse_override(word)
                if not override.is_sweep_override():
                    overrides.append(word)
                elif override.is_discrete_sweep():
                    overrides.append(f"{word.split('=', 1)[0]}={next(override.sweep_string_iterator())}")
            found.append((f"{doc.name}: {match.group(0).strip()}", overrides))
    return found


def test_every_documented_command_composes_and_validates():
    commands = documented_overrides()
    assert len(commands) >= 50, len(commands)  # the extraction still finds them
    with composing() as compose:
        for where, overrides in commands:
            try:
                validate(compose(*overrides))
            except Exception as e:  # noqa: BLE001 - every failure is reported with its command
                raise AssertionError(f"{where}: {type(e).__name__}: {e}") from None
