"""Token data: prepare text into train.bin/val.bin and resolve data.path to a Dataset.

The on-disk format is nanoGPT's: a flat array of token ids per split
(uint16, or uint32 when a char vocabulary passes 65,536 entries), read
through np.memmap. Text is split by characters before it is tokenized, as
nanoGPT's shakespeare and shakespeare_char prepare scripts do, so the first
(1 - val_fraction) of the characters become train.bin.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from engine.config import BUILTIN_CORPUS, DataConfig, TokenizerName
from engine.tokenizers import (
    CharTokenizer,
    DataError,
    GPT2Tokenizer,
    Tokenizer,
    atomic_output,
    load_vocabulary,
    save_vocabulary,
)

__all__ = [
    "DataError", "Dataset", "PreparedInfo", "Split",
    "builtin_corpus_text", "load_dataset", "prepare",
]

logger = logging.getLogger(__name__)

Split = Literal["train", "val"]
DEFAULT_CACHE_DIR = "~/.cache/gpttui"
BUILTIN_CORPUS_MAX_CHARS = 6_000_000
"""Whole files are added in sorted order until the corpus reaches this many characters."""
_EXCLUDED_STDLIB_DIRS = frozenset({"test", "tests", "idle_test", "site-packages", "dist-packages"})


@dataclass(frozen=True)
class PreparedInfo:
    """Summary of a directory written by `prepare`."""

    out_dir: Path
    tokenizer: TokenizerName
    vocab_size: int
    dtype: str
    train_tokens: int
    val_tokens: int

    def summary(self) -> str:
        """Return one line for the CLI, such as "wrote data/: 1,003,854 train + 111,540 val tokens, ..."."""
        return (
            f"wrote {self.out_dir}: {self.train_tokens:,} train + {self.val_tokens:,} val tokens, "
            f"{self.tokenizer} vocab {self.vocab_size}, {self.dtype}"
        )


@dataclass(frozen=True)
class Dataset:
    """A prepared directory, checked and ready to sample from."""

    train_path: Path
    val_path: Path
    dtype: np.dtype
    vocab_size: int
    tokenizer: Tokenizer
    train_tokens: int
    val_tokens: int
    description: str
    """One line for the UI, such as "Python 3.11 standard library sources, 6.0M chars, char vocab 98"."""

    def path(self, split: Split) -> Path:
        return self.train_path if split == "train" else self.val_path

    def tokens(self, split: Split) -> int:
        return self.train_tokens if split == "train" else self.val_tokens


# --- preparing text ---------------------------------------------------------


def prepare(
    text_path: str | Path,
    out_dir: str | Path,
    tokenizer: TokenizerName = "char",
    tiktoken_file: str | Path | None = None,
    val_fraction: float = 0.1,
) -> PreparedInfo:
    """Tokenize a UTF-8 text file into out_dir/train.bin, val.bin and its vocabulary files.

    Raises:
        DataError: the file is missing, empty, not UTF-8 or too short to split,
            or GPT-2's ranks are unavailable.
    """
    path = Path(text_path).expanduser()
    text = _decode_text(path, _read_bytes(path))
    return _prepare_text(text, Path(out_dir).expanduser(), tokenizer, tiktoken_file, val_fraction)


def _read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"text file {path} not found; pass an existing UTF-8 text file") from None
    except (IsADirectoryError, PermissionError) as exc:
        raise DataError(f"text file {path} cannot be read ({exc.strerror}); pass a readable UTF-8 text file") from None
    if not data:
        raise DataError(f"text file {path} is empty; pass a file with training text")
    return data


def _decode_text(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"text file {path} is not UTF-8 (invalid byte at offset {exc.start}); "
            "convert it first, for example with `iconv -t UTF-8`"
        ) from None


def _prepare_text(
    text: str, out_dir: Path, tokenizer: str, tiktoken_file: str | Path | None, val_fraction: float
) -> PreparedInfo:
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n_train = int(len(text) * (1 - val_fraction))
    if n_train == 0 or n_train == len(text):
        raise DataError(
            f"text is too short to split into train and val with val_fraction {val_fraction} "
            f"(length {len(text)}); use a longer text"
        )

    tok: Tokenizer
    if tokenizer == "char":
        tok, ids = _encode_chars(text)
        train_ids, val_ids = ids[:n_train], ids[n_train:]
    elif tokenizer == "gpt2":
        tok = GPT2Tokenizer(tiktoken_file)
        train_ids = np.array(tok.encode(text[:n_train]), dtype=np.int64)
        val_ids = np.array(tok.encode(text[n_train:]), dtype=np.int64)
    else:
        raise DataError(f"tokenizer must be 'char' or 'gpt2', got {tokenizer!r}")

    dtype = np.dtype(np.uint16 if tok.vocab_size <= 2**16 else np.uint32)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, ids in (("train.bin", train_ids), ("val.bin", val_ids)):
        with atomic_output(out_dir / name) as tmp:
            ids.astype(dtype).tofile(tmp)
    save_vocabulary(tok, out_dir, dtype)
    return PreparedInfo(out_dir, tok.name, tok.vocab_size, dtype.name, len(train_ids), len(val_ids))


def _encode_chars(text: str) -> tuple[CharTokenizer, np.ndarray]:
    """Build the char vocabulary and encode `text` with numpy, without a Python loop per character."""
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")
    # Sorting distinct code points gives the same order as sorted(set(text)).
    present = np.flatnonzero(np.bincount(codes))
    lookup = np.zeros(present[-1] + 1, dtype=np.int64)
    lookup[present] = np.arange(len(present))
    return CharTokenizer([chr(code) for code in present]), lookup[codes]


def builtin_corpus_text(max_chars: int = BUILTIN_CORPUS_MAX_CHARS) -> str:
    """Concatenate this interpreter's standard-library .py files, excluding tests, in sorted order.

    The result depends only on the Python installation, so it needs no network.
    Each file is preceded by a comment line naming its path.
    """
    root = Path(sysconfig.get_paths()["stdlib"])
    parts: list[str] = []
    total = 0
    for relative in _stdlib_sources(root):
        try:
            source = (root / relative).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        parts.append(f"# ---- {relative} ----\n{source}\n")
        total += len(parts[-1])
        if total >= max_chars:
            break
    if not parts:
        raise DataError(f"no Python sources found under {root}; set data.path to a text file instead")
    return "".join(parts)


def _stdlib_sources(root: Path) -> list[str]:
    sources = []
    for folder, subfolders, files in os.walk(root):
        # Pruning here skips walking site-packages, which can dwarf the stdlib.
        subfolders[:] = [name for name in subfolders if name not in _EXCLUDED_STDLIB_DIRS]
        relative = Path(folder).relative_to(root)
        sources.extend((relative / name).as_posix() for name in files if name.endswith(".py"))
    return sorted(sources)


# --- resolving data.path ----------------------------------------------------


def load_dataset(cfg: DataConfig, block_size: int, model_vocab_size: int = 0) -> Dataset:
    """Resolve data.path to a prepared directory, preparing text on first use.

    data.path may name a prepared directory, whose own vocabulary files then
    decide the tokenizer, so data.tokenizer is ignored. A text file is prepared
    into data.cache_dir under a key made of its content hash, data.tokenizer and
    data.val_fraction. builtin:python-stdlib is prepared and cached the same way.

    Args:
        block_size: context length; each split needs at least block_size + 1 tokens.
        model_vocab_size: the model's vocabulary, or 0 to skip the size check.
    """
    tiktoken_file = cfg.tiktoken_file or None
    if cfg.path == BUILTIN_CORPUS:
        text = builtin_corpus_text()
        directory = _prepare_cached(text, text.encode("utf-8"), "python-stdlib", cfg)
        label = f"Python {sys.version_info.major}.{sys.version_info.minor} standard library sources"
    else:
        path = Path(cfg.path).expanduser()
        if path.is_dir():
            directory, label = path, str(path)
        elif path.is_file():
            data = _read_bytes(path)
            directory = _prepare_cached(_decode_text(path, data), data, path.stem, cfg)
            label = path.name
        else:
            raise DataError(
                f"data.path: {path} not found; pass a text file, a directory with "
                f"train.bin and val.bin, or {BUILTIN_CORPUS}"
            )
    return _open_prepared(directory, label, tiktoken_file, block_size, model_vocab_size)


def _prepare_cached(text: str, content: bytes, name: str, cfg: DataConfig) -> Path:
    key = hashlib.sha256(content)
    key.update(f"\0{cfg.tokenizer}\0{cfg.val_fraction!r}".encode())
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:40]
    directory = Path(cfg.cache_dir or DEFAULT_CACHE_DIR).expanduser() / f"{slug}-{cfg.tokenizer}-{key.hexdigest()[:16]}"
    # vocab.json is written last, so it exists only in a complete directory.
    if not (directory / "vocab.json").is_file():
        logger.info("preparing %s with the %s tokenizer into %s", name, cfg.tokenizer, directory)
        _prepare_text(text, directory, cfg.tokenizer, cfg.tiktoken_file or None, cfg.val_fraction)
    return directory


def _open_prepared(
    directory: Path, label: str, tiktoken_file: str | None, block_size: int, model_vocab_size: int
) -> Dataset:
    paths = {"train": directory / "train.bin", "val": directory / "val.bin"}
    for path in paths.values():
        if not path.is_file():
            raise DataError(f"data.path: {directory} has no {path.name} — run `gpttui prepare TEXT --out {directory}` first")
    tokenizer, dtype = load_vocabulary(directory, tiktoken_file)

    counts: dict[str, int] = {}
    for split, path in paths.items():
        size = path.stat().st_size
        if size % dtype.itemsize:
            raise DataError(
                f"data.path: {path} is {size} bytes, not a whole number of {dtype.name} tokens; prepare the text again"
            )
        counts[split] = size // dtype.itemsize
        if counts[split] < block_size + 1:
            raise DataError(
                f"data.path: {path} has {counts[split]} tokens, fewer than model.block_size + 1 = "
                f"{block_size + 1}; use a longer text or a smaller model.block_size"
            )
    if model_vocab_size and tokenizer.vocab_size > model_vocab_size:
        raise DataError(
            f"data.path: {directory} has a vocabulary of {tokenizer.vocab_size} tokens, larger than "
            f"model.vocab_size = {model_vocab_size}; set model.vocab_size to 0 (take it from the data) "
            f"or to at least {tokenizer.vocab_size}"
        )

    unit = "chars" if tokenizer.name == "char" else "tokens"
    total = _format_count(counts["train"] + counts["val"])
    description = f"{label}, {total} {unit}, {tokenizer.name} vocab {tokenizer.vocab_size}"
    return Dataset(
        paths["train"], paths["val"], dtype, tokenizer.vocab_size, tokenizer,
        counts["train"], counts["val"], description,
    )


def _format_count(count: int) -> str:
    if count >= 1_000_000:
        return f"{count / 1_000_000:.1f}M"
    if count >= 1_000:
        return f"{count / 1_000:.1f}K"
    return str(count)
