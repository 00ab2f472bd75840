"""Tokenizers and the vocabulary files stored beside train.bin and val.bin.

Two tokenizers share one small protocol (`name`, `vocab_size`, `encode`,
`decode`): a character-level one whose vocabulary is the sorted set of
characters in the text, as in nanoGPT's shakespeare_char example, and GPT-2's
byte-level BPE through tiktoken. `decode` accepts any integer, because a model
whose embedding is padded past the vocabulary can sample ids outside it.

A prepared directory describes its vocabulary in vocab.json (ours, readable
JSON) and, for character vocabularies stored as uint16, also in nanoGPT's
meta.pkl. meta.pkl files are read with an unpickler that rejects every global
reference, so a crafted file cannot run code.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import pickle
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import tiktoken
import tiktoken.load

from engine.config import TokenizerName

TIKTOKEN_FILE_ENV = "GPTTUI_TIKTOKEN_FILE"
REPLACEMENT_CHAR = "\ufffd"

GPT2_VOCAB_SIZE = 50257
GPT2_EOT_TOKEN = 50256
GPT2_RANKS_SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"
# GPT-2's pre-tokenizer regex as first released, as quoted in tiktoken 0.14's
# tiktoken_ext/openai_public.py, which uses an equivalent faster spelling. It
# splits off English contractions, then runs of letters, digits or other symbols
# with at most one leading space, then whitespace.
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

_OFFLINE_HINT = (
    "pass --tiktoken-file FILE (or set data.tiktoken_file / "
    f"{TIKTOKEN_FILE_ENV}) pointing at a gpt2.tiktoken rank file"
)


class DataError(ValueError):
    """A text file, prepared directory or vocabulary that cannot be used."""


class Tokenizer(Protocol):
    """Converter between text and token ids, implemented by CharTokenizer and GPT2Tokenizer."""

    name: TokenizerName
    vocab_size: int

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Iterable[int]) -> str: ...


class CharTokenizer:
    """Character-level tokenizer: id i is the i-th character of a sorted vocabulary."""

    name: TokenizerName = "char"

    def __init__(self, chars: Sequence[str]) -> None:
        self.itos: list[str] = list(chars)
        self.stoi: dict[str, int] = {ch: i for i, ch in enumerate(self.itos)}
        self.vocab_size = len(self.itos)

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        """Build the vocabulary from every distinct character of `text`, sorted by code point."""
        return cls(sorted(set(text)))

    def encode(self, text: str) -> list[int]:
        try:
            return [self.stoi[ch] for ch in text]
        except KeyError as exc:
            raise DataError(
                f"character {exc.args[0]!r} is not in the char vocabulary of "
                f"{self.vocab_size} characters; use text made of the training data's characters"
            ) from None

    def decode(self, ids: Iterable[int]) -> str:
        size = self.vocab_size
        return "".join(self.itos[i] if 0 <= i < size else REPLACEMENT_CHAR for i in ids)


class GPT2Tokenizer:
    """GPT-2's byte-level BPE (tiktoken), 50,257 ids with <|endoftext|> = 50256.

    Args:
        rank_file: local tiktoken rank file. None falls back to
            $GPTTUI_TIKTOKEN_FILE, then to `tiktoken.get_encoding("gpt2")`,
            which downloads the ranks unless tiktoken has them cached.
    """

    name: TokenizerName = "gpt2"
    vocab_size = GPT2_VOCAB_SIZE
    eot_token = GPT2_EOT_TOKEN

    def __init__(self, rank_file: str | Path | None = None) -> None:
        self.encoding = load_gpt2_encoding(rank_file)

    def encode(self, text: str) -> list[int]:
        # encode_ordinary treats "<|endoftext|>" in the text as plain characters.
        return self.encoding.encode_ordinary(text)

    def decode(self, ids: Iterable[int]) -> str:
        pieces: list[bytes] = []
        run: list[int] = []
        for token in ids:
            if 0 <= token < GPT2_VOCAB_SIZE:
                run.append(token)
                continue
            pieces.append(self.encoding.decode_bytes(run))
            pieces.append(REPLACEMENT_CHAR.encode())
            run = []
        pieces.append(self.encoding.decode_bytes(run))
        # A sampled sequence can end inside a multi-byte character.
        return b"".join(pieces).decode("utf-8", errors="replace")


def load_gpt2_encoding(rank_file: str | Path | None = None) -> tiktoken.Encoding:
    """Build GPT-2's tiktoken encoding from a local rank file, or from tiktoken's registry.

    Raises:
        DataError: the rank file is missing or is not GPT-2's, or no file was
            given and tiktoken cannot fetch the ranks.
    """
    source = "--tiktoken-file / data.tiktoken_file"
    if not rank_file and os.environ.get(TIKTOKEN_FILE_ENV):
        rank_file, source = os.environ[TIKTOKEN_FILE_ENV], TIKTOKEN_FILE_ENV
    if rank_file:
        path = Path(rank_file).expanduser().resolve()
        if not path.is_file():
            raise DataError(f"{source}: tiktoken rank file {path} not found; {_OFFLINE_HINT}")
        stat = path.stat()
        return _encoding_from_file(str(path), stat.st_mtime_ns, stat.st_size)
    try:
        return tiktoken.get_encoding("gpt2")
    except (OSError, ValueError, ImportError) as exc:
        raise DataError(
            f"GPT-2 BPE ranks are not available offline; {_OFFLINE_HINT} ({type(exc).__name__})"
        ) from exc


@functools.lru_cache(maxsize=4)
def _encoding_from_file(path: str, mtime_ns: int, size: int) -> tiktoken.Encoding:
    # mtime_ns and size are part of the cache key so an edited file is reloaded.
    del mtime_ns, size
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    try:
        # tiktoken keeps a copy of every file it loads in its cache directory,
        # keyed by path alone. Passing the hash makes it discard a stale copy.
        ranks = tiktoken.load.load_tiktoken_bpe(path, expected_hash=digest)
    except (ValueError, IndexError) as exc:
        raise DataError(f"{path} is not a tiktoken rank file ({exc}); {_OFFLINE_HINT}") from None
    if len(ranks) != GPT2_EOT_TOKEN or max(ranks.values()) != GPT2_EOT_TOKEN - 1:
        raise DataError(
            f"{path} has {len(ranks)} BPE ranks, but GPT-2 has {GPT2_EOT_TOKEN}; {_OFFLINE_HINT}"
        )
    # NOTE: a file with 50,256 ranks but another hash is accepted, because the
    # count is all the encoding needs. Its merges may then differ from GPT-2's.
    return tiktoken.Encoding(
        name="gpt2" if digest == GPT2_RANKS_SHA256 else f"gpt2-ranks-{digest[:12]}",
        pat_str=GPT2_PATTERN,
        mergeable_ranks=ranks,
        special_tokens={"<|endoftext|>": GPT2_EOT_TOKEN},
        explicit_n_vocab=GPT2_VOCAB_SIZE,
    )


# --- vocabulary files ------------------------------------------------------


@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`, renamed onto it only if the block succeeds.

    Readers see either the old file or the complete new one, never a partial write.
    """
    # tempfile.mkstemp would leave mode 0600 on the final file, so the caller's
    # write creates this unique name instead, with the usual umask permissions.
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_vocabulary(tokenizer: Tokenizer, out_dir: Path, dtype: np.dtype) -> None:
    """Write vocab.json, and meta.pkl for nanoGPT when the vocabulary is char and uint16.

    vocab.json is written last, so its presence marks a complete directory.
    """
    meta_path = out_dir / "meta.pkl"
    if isinstance(tokenizer, CharTokenizer) and dtype == np.uint16:
        meta = {"vocab_size": tokenizer.vocab_size, "itos": dict(enumerate(tokenizer.itos)), "stoi": tokenizer.stoi}
        with atomic_output(meta_path) as tmp:
            tmp.write_bytes(pickle.dumps(meta))
    else:
        # nanoGPT reads every directory with meta.pkl as uint16 chars, so a stale
        # one must not outlive a re-preparation with GPT-2 or uint32 ids.
        meta_path.unlink(missing_ok=True)

    vocab: dict[str, Any] = {"tokenizer": tokenizer.name, "vocab_size": tokenizer.vocab_size}
    if isinstance(tokenizer, CharTokenizer):
        vocab["itos"] = tokenizer.itos
    vocab["dtype"] = np.dtype(dtype).name
    with atomic_output(out_dir / "vocab.json") as tmp:
        tmp.write_text(json.dumps(vocab, ensure_ascii=False) + "\n", encoding="utf-8")


def load_vocabulary(directory: Path, tiktoken_file: str | Path | None = None) -> tuple[Tokenizer, np.dtype]:
    """Read a prepared directory's tokenizer and token dtype.

    vocab.json wins over meta.pkl. A directory with neither is one of nanoGPT's
    GPT-2 datasets (openwebtext, shakespeare), stored as uint16.
    """
    if (directory / "vocab.json").is_file():
        return _read_vocab_json(directory / "vocab.json", tiktoken_file)
    if (directory / "meta.pkl").is_file():
        return read_meta_pkl(directory / "meta.pkl"), np.dtype(np.uint16)
    return GPT2Tokenizer(tiktoken_file), np.dtype(np.uint16)


def _read_vocab_json(path: Path, tiktoken_file: str | Path | None) -> tuple[Tokenizer, np.dtype]:
    try:
        vocab = json.loads(path.read_text(encoding="utf-8"))
        name, dtype = vocab["tokenizer"], np.dtype(vocab["dtype"])
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DataError(f"{path} is not a valid vocabulary file ({exc!r}); prepare the text again") from None
    if dtype not in (np.uint16, np.uint32):
        raise DataError(f"{path}: dtype {dtype.name} is not uint16 or uint32; prepare the text again")
    if name == "gpt2":
        return GPT2Tokenizer(tiktoken_file), dtype
    itos = vocab.get("itos")
    if name != "char" or not _is_char_list(itos):
        raise DataError(f"{path}: expected tokenizer 'gpt2', or 'char' with an itos list of characters")
    return CharTokenizer(itos), dtype


def _is_char_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(ch, str) and len(ch) == 1 for ch in value)


class _PlainDataUnpickler(pickle.Unpickler):
    """Unpickler that loads only built-in containers and scalars.

    Every class, function or module reference in a pickle goes through
    find_class, so rejecting all of them leaves nothing that can run code.
    """

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"it refers to {module}.{name}")


def read_meta_pkl(path: Path) -> CharTokenizer:
    """Read nanoGPT's meta.pkl ({'vocab_size', 'itos', 'stoi'}) without running pickled code."""
    try:
        with path.open("rb") as file:
            meta = _PlainDataUnpickler(file).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, OSError) as exc:
        raise DataError(
            f"{path} was not loaded: {exc}; only a plain dict of strings and integers is accepted"
        ) from None
    try:
        size, itos = meta["vocab_size"], meta["itos"]
        chars = [itos[i] for i in range(size)]
    except (KeyError, TypeError) as exc:
        raise DataError(f"{path} lacks nanoGPT's vocab_size and itos entries ({exc!r})") from None
    if not chars or not _is_char_list(chars):
        raise DataError(f"{path}: itos must map each id from 0 to vocab_size - 1 to a single character")
    return CharTokenizer(chars)
