"""Fixtures shared by the engine and app tests."""

from __future__ import annotations

from pathlib import Path

import pytest

# Reference files kept next to the repository, never committed into it.
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Folder containing tinyshakespeare.txt and gpt2.tiktoken, which may be absent."""
    return SHARED_DATA


def _require(path: Path, description: str) -> Path:
    if not path.is_file():
        pytest.skip(f"{description} not found at {path}")
    return path


@pytest.fixture(scope="session")
def shakespeare_path(shared_data: Path) -> Path:
    """Tiny Shakespeare, 1,115,394 characters."""
    return _require(shared_data / "tinyshakespeare.txt", "Tiny Shakespeare text")


@pytest.fixture(scope="session")
def gpt2_rank_file(shared_data: Path) -> Path:
    """GPT-2's BPE ranks in tiktoken's format, so GPT-2 tests never download."""
    return _require(shared_data / "gpt2.tiktoken", "GPT-2 tiktoken rank file")
