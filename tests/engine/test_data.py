"""Tokenizers, prepare, load_dataset, BatchSampler and PrefetchingLoader."""

from __future__ import annotations

import json
import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import tiktoken
import tiktoken.load
import torch

from engine.config import BUILTIN_CORPUS, DataConfig
from engine.batches import BatchSampler, PrefetchingLoader
from engine.data import (
    DataError,
    Dataset,
    builtin_corpus_text,
    load_dataset,
    prepare,
)
from engine.tokenizers import (
    GPT2_PATTERN,
    TIKTOKEN_FILE_ENV,
    CharTokenizer,
    GPT2Tokenizer,
    read_meta_pkl,
)

CPU = torch.device("cpu")
TEXT = "".join(f"line {i}: the quick brown fox jumps over the lazy dog.\n" for i in range(400))


@pytest.fixture(autouse=True)
def _offline_tiktoken(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any fallback to tiktoken's registry fail, as on a machine without network."""

    def unavailable(name: str) -> tiktoken.Encoding:
        raise OSError(f"tiktoken.get_encoding({name!r}) is disabled in tests")

    monkeypatch.setattr(tiktoken, "get_encoding", unavailable)
    monkeypatch.delenv(TIKTOKEN_FILE_ENV, raising=False)
    # An empty cache directory stops tiktoken copying the local rank file into /tmp.
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")


@pytest.fixture
def text_path(tmp_path: Path) -> Path:
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def write_nanogpt_dir(directory: Path, train: np.ndarray, val: np.ndarray, chars: list[str] | None) -> Path:
    """Write a directory the way nanoGPT's prepare scripts do: raw uint16 plus meta.pkl for chars."""
    directory.mkdir(parents=True, exist_ok=True)
    np.array(train, dtype=np.uint16).tofile(directory / "train.bin")
    np.array(val, dtype=np.uint16).tofile(directory / "val.bin")
    if chars is not None:
        meta = {
            "vocab_size": len(chars),
            "itos": {i: ch for i, ch in enumerate(chars)},
            "stoi": {ch: i for i, ch in enumerate(chars)},
        }
        with open(directory / "meta.pkl", "wb") as file:
            pickle.dump(meta, file)
    return directory


VOCAB = 50
CHARS = [chr(ord("0") + i) for i in range(VOCAB)]


@pytest.fixture
def counting_dataset(tmp_path: Path) -> Dataset:
    """Dataset whose token at position p is p % 50, so every window is predictable."""
    directory = write_nanogpt_dir(
        tmp_path / "counting", np.arange(2000) % VOCAB, np.arange(500) % VOCAB, CHARS
    )
    return load_dataset(DataConfig(path=str(directory)), block_size=16)


# --- tokenizers -------------------------------------------------------------


def test_char_round_trip() -> None:
    tokenizer = CharTokenizer.from_text(TEXT)
    assert tokenizer.decode(tokenizer.encode(TEXT)) == TEXT


def test_char_vocab_sorted() -> None:
    tokenizer = CharTokenizer.from_text("banana!")
    assert tokenizer.itos == ["!", "a", "b", "n"]
    assert tokenizer.vocab_size == 4
    assert tokenizer.encode("nab") == [3, 1, 2]


def test_char_decode_unknown_ids() -> None:
    tokenizer = CharTokenizer(["a", "b"])
    assert tokenizer.decode([0, 2, -1, 1]) == "a\ufffd\ufffdb"


def test_char_encode_unknown_char() -> None:
    tokenizer = CharTokenizer(["a", "b"])
    with pytest.raises(DataError, match="'z' is not in the char vocabulary of 2"):
        tokenizer.encode("abz")


def test_gpt2_first_citizen(gpt2_rank_file: Path) -> None:
    tokenizer = GPT2Tokenizer(gpt2_rank_file)
    ids = tokenizer.encode("First Citizen:")
    assert ids == [5962, 22307, 25]
    assert tokenizer.decode([5962]) == "First"
    assert tokenizer.decode([22307]) == " Citizen"
    assert tokenizer.vocab_size == 50257


def test_gpt2_round_trip(gpt2_rank_file: Path, shakespeare_path: Path) -> None:
    tokenizer = GPT2Tokenizer(gpt2_rank_file)
    text = shakespeare_path.read_text(encoding="utf-8")[:20_000] + "naïve café — 日本語 🙂 <|endoftext|>"
    assert tokenizer.decode(tokenizer.encode(text)) == text


def test_gpt2_endoftext_is_plain_text(gpt2_rank_file: Path) -> None:
    tokenizer = GPT2Tokenizer(gpt2_rank_file)
    assert 50256 not in tokenizer.encode("a<|endoftext|>b")
    assert tokenizer.decode([50256]) == "<|endoftext|>"


def test_gpt2_decode_padded_ids(gpt2_rank_file: Path) -> None:
    tokenizer = GPT2Tokenizer(gpt2_rank_file)
    assert tokenizer.decode([5962, 50300, 22307, -1]) == "First\ufffd Citizen\ufffd"


def test_gpt2_pattern_matches_tiktoken(gpt2_rank_file: Path) -> None:
    openai_public = pytest.importorskip("tiktoken_ext.openai_public")
    ranks = tiktoken.load.load_tiktoken_bpe(str(gpt2_rank_file))
    special = {"<|endoftext|>": 50256}
    ours = tiktoken.Encoding("ours", pat_str=GPT2_PATTERN, mergeable_ranks=ranks, special_tokens=special)
    theirs = tiktoken.Encoding(
        "theirs", pat_str=openai_public.r50k_pat_str, mergeable_ranks=ranks, special_tokens=special
    )
    text = "I'm  here\n\n  it's 123abc!!  \t end   \nDON'T 3.14159 x\u00a0y   \n"
    assert ours.encode_ordinary(text) == theirs.encode_ordinary(text)


def test_gpt2_environment_variable(gpt2_rank_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TIKTOKEN_FILE_ENV, str(gpt2_rank_file))
    assert GPT2Tokenizer().encode("First") == [5962]


def test_gpt2_offline_error() -> None:
    with pytest.raises(DataError) as info:
        GPT2Tokenizer()
    message = str(info.value)
    assert message.startswith("GPT-2 BPE ranks are not available offline; pass --tiktoken-file FILE")
    assert "data.tiktoken_file / GPTTUI_TIKTOKEN_FILE" in message


def test_gpt2_missing_rank_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="tiktoken rank file .*missing.tiktoken not found"):
        GPT2Tokenizer(tmp_path / "missing.tiktoken")


def test_gpt2_wrong_rank_file(tmp_path: Path) -> None:
    import base64

    path = tmp_path / "bytes.tiktoken"
    lines = [f"{base64.b64encode(bytes([b])).decode()} {b}" for b in range(256)]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="has 256 BPE ranks, but GPT-2 has 50256"):
        GPT2Tokenizer(path)


# --- prepare ----------------------------------------------------------------


def test_prepare_shakespeare_char(shakespeare_path: Path, tmp_path: Path) -> None:
    info = prepare(shakespeare_path, tmp_path)
    assert info.vocab_size == 65
    assert info.train_tokens == 1_003_854
    assert info.val_tokens == 111_540
    assert info.dtype == "uint16"
    assert (tmp_path / "train.bin").stat().st_size == 2 * 1_003_854
    assert (tmp_path / "val.bin").stat().st_size == 2 * 111_540


def test_prepare_shakespeare_gpt2(shakespeare_path: Path, gpt2_rank_file: Path, tmp_path: Path) -> None:
    info = prepare(shakespeare_path, tmp_path, tokenizer="gpt2", tiktoken_file=gpt2_rank_file)
    train = np.fromfile(tmp_path / "train.bin", dtype=np.uint16)
    assert info.train_tokens == 301_966
    assert info.val_tokens == 36_059
    assert info.train_tokens + info.val_tokens == 338_025
    assert len(train) == 301_966
    assert train[:3].tolist() == [5962, 22307, 25]
    assert not (tmp_path / "meta.pkl").exists()
    assert json.loads((tmp_path / "vocab.json").read_text()) == {
        "tokenizer": "gpt2", "vocab_size": 50257, "dtype": "uint16",
    }


def test_prepare_split_by_chars(text_path: Path, tmp_path: Path) -> None:
    info = prepare(text_path, tmp_path / "out", val_fraction=0.25)
    tokenizer = CharTokenizer.from_text(TEXT)
    train = np.fromfile(tmp_path / "out" / "train.bin", dtype=np.uint16)
    val = np.fromfile(tmp_path / "out" / "val.bin", dtype=np.uint16)
    n_train = int(len(TEXT) * 0.75)
    assert info.train_tokens == n_train
    assert tokenizer.decode(train.tolist()) == TEXT[:n_train]
    assert tokenizer.decode(val.tolist()) == TEXT[n_train:]


def test_prepare_vocab_json(text_path: Path, tmp_path: Path) -> None:
    prepare(text_path, tmp_path)
    vocab = json.loads((tmp_path / "vocab.json").read_text(encoding="utf-8"))
    assert vocab == {
        "tokenizer": "char",
        "vocab_size": len(set(TEXT)),
        "itos": sorted(set(TEXT)),
        "dtype": "uint16",
    }


def test_meta_pkl_plain_pickle(shakespeare_path: Path, tmp_path: Path) -> None:
    prepare(shakespeare_path, tmp_path)
    with open(tmp_path / "meta.pkl", "rb") as file:
        meta = pickle.load(file)
    assert type(meta) is dict
    assert set(meta) == {"vocab_size", "itos", "stoi"}
    assert meta["vocab_size"] == 65
    assert meta["itos"][0] == "\n"
    assert meta["itos"][64] == "z"
    assert all(meta["stoi"][ch] == i for i, ch in meta["itos"].items())


def test_meta_pkl_restricted_reader(shakespeare_path: Path, tmp_path: Path) -> None:
    prepare(shakespeare_path, tmp_path)
    tokenizer = read_meta_pkl(tmp_path / "meta.pkl")
    assert tokenizer.vocab_size == 65
    assert tokenizer.itos == sorted(set(shakespeare_path.read_text(encoding="utf-8")))


class _RunsCommand:
    """Pickles to a call of os.system, as a malicious meta.pkl would."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_meta_pkl_rejects_globals(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    meta = {"vocab_size": 1, "itos": {0: "a"}, "stoi": {"a": 0}, "x": _RunsCommand(f"touch {marker}")}
    (tmp_path / "meta.pkl").write_bytes(pickle.dumps(meta))
    with pytest.raises(DataError, match="refers to (posix|os|nt).system"):
        read_meta_pkl(tmp_path / "meta.pkl")
    assert not marker.exists()


def test_meta_pkl_missing_keys(tmp_path: Path) -> None:
    (tmp_path / "meta.pkl").write_bytes(pickle.dumps({"itos": {0: "a"}}))
    with pytest.raises(DataError, match="lacks nanoGPT's vocab_size and itos"):
        read_meta_pkl(tmp_path / "meta.pkl")


def test_prepare_uint32_vocab(tmp_path: Path) -> None:
    # Code points from U+10000 avoid the surrogate range and give 70,000 distinct characters.
    chars = "".join(chr(0x10000 + i) for i in range(70_000))
    (tmp_path / "wide.txt").write_text(chars * 2, encoding="utf-8")
    info = prepare(tmp_path / "wide.txt", tmp_path / "out")
    vocab = json.loads((tmp_path / "out" / "vocab.json").read_text(encoding="utf-8"))
    assert info.dtype == "uint32"
    assert vocab["dtype"] == "uint32"
    assert not (tmp_path / "out" / "meta.pkl").exists()
    dataset = load_dataset(DataConfig(path=str(tmp_path / "out")), block_size=8)
    x, _ = BatchSampler(dataset, "train", 4, 8, CPU, seed=0).next()
    assert dataset.dtype == np.uint32
    assert dataset.vocab_size == 70_000
    assert int(x.max()) < 70_000


def test_prepare_leaves_no_temp_files(text_path: Path, tmp_path: Path) -> None:
    prepare(text_path, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["meta.pkl", "train.bin", "val.bin", "vocab.json"]


def test_prepare_gpt2_removes_stale_meta(text_path: Path, gpt2_rank_file: Path, tmp_path: Path) -> None:
    prepare(text_path, tmp_path)
    prepare(text_path, tmp_path, tokenizer="gpt2", tiktoken_file=gpt2_rank_file)
    assert not (tmp_path / "meta.pkl").exists()
    assert load_dataset(DataConfig(path=str(tmp_path), tiktoken_file=str(gpt2_rank_file)), 8).tokenizer.name == "gpt2"


def test_prepare_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"text file .*nope\.txt not found"):
        prepare(tmp_path / "nope.txt", tmp_path / "out")


def test_prepare_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(DataError, match=r"empty\.txt is empty"):
        prepare(tmp_path / "empty.txt", tmp_path / "out")


def test_prepare_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "latin1.txt").write_bytes("café au lait".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1\.txt is not UTF-8 \(invalid byte at offset 3\)"):
        prepare(tmp_path / "latin1.txt", tmp_path / "out")


def test_prepare_too_short(tmp_path: Path) -> None:
    (tmp_path / "short.txt").write_text("a")
    with pytest.raises(DataError, match=r"too short to split into train and val with val_fraction 0.1 \(length 1\)"):
        prepare(tmp_path / "short.txt", tmp_path / "out")
    assert not (tmp_path / "out").exists()


# --- load_dataset -----------------------------------------------------------


def test_load_nanogpt_char_dir(tmp_path: Path) -> None:
    directory = write_nanogpt_dir(tmp_path / "d", [0, 1, 2, 1, 0] * 10, [2, 1, 0] * 10, ["a", "b", "c"])
    dataset = load_dataset(DataConfig(path=str(directory)), block_size=4)
    assert dataset.tokenizer.name == "char"
    assert dataset.vocab_size == 3
    assert dataset.dtype == np.uint16
    assert dataset.train_tokens == 50
    assert dataset.val_tokens == 30
    assert dataset.tokenizer.decode([0, 1, 2]) == "abc"
    assert dataset.description == f"{directory}, 80 chars, char vocab 3"


def test_load_nanogpt_gpt2_dir(tmp_path: Path, gpt2_rank_file: Path) -> None:
    directory = write_nanogpt_dir(tmp_path / "owt", [5962, 22307, 25] * 10, [25, 5962] * 10, None)
    dataset = load_dataset(DataConfig(path=str(directory), tiktoken_file=str(gpt2_rank_file)), block_size=8)
    assert dataset.tokenizer.name == "gpt2"
    assert dataset.vocab_size == 50257
    assert dataset.dtype == np.uint16
    assert dataset.train_tokens == 30


def test_load_gpt2_dir_offline(tmp_path: Path) -> None:
    directory = write_nanogpt_dir(tmp_path / "owt", [1] * 20, [2] * 20, None)
    with pytest.raises(DataError, match="not available offline"):
        load_dataset(DataConfig(path=str(directory)), block_size=8)


def test_load_text_path_cached(text_path: Path, tmp_path: Path) -> None:
    cfg = DataConfig(path=str(text_path), cache_dir=str(tmp_path / "cache"))
    first = load_dataset(cfg, block_size=32)
    stamp = first.train_path.stat().st_mtime_ns
    second = load_dataset(cfg, block_size=32)
    assert second.train_path == first.train_path
    assert second.train_path.stat().st_mtime_ns == stamp
    assert first.train_path.parent.parent == tmp_path / "cache"
    assert first.description == f"text.txt, {len(TEXT) / 1000:.1f}K chars, char vocab {len(set(TEXT))}"


def test_load_cache_key_content(text_path: Path, tmp_path: Path) -> None:
    cfg = DataConfig(path=str(text_path), cache_dir=str(tmp_path / "cache"))
    before = load_dataset(cfg, block_size=32).train_path
    text_path.write_text(TEXT + "more text\n", encoding="utf-8")
    after = load_dataset(cfg, block_size=32).train_path
    assert before != after


def test_load_cache_key_tokenizer(text_path: Path, gpt2_rank_file: Path, tmp_path: Path) -> None:
    cache = str(tmp_path / "cache")
    char = load_dataset(DataConfig(path=str(text_path), cache_dir=cache), block_size=32)
    gpt2 = load_dataset(
        DataConfig(path=str(text_path), cache_dir=cache, tokenizer="gpt2", tiktoken_file=str(gpt2_rank_file)),
        block_size=32,
    )
    assert char.train_path != gpt2.train_path
    assert gpt2.tokenizer.name == "gpt2"


def test_load_builtin_corpus(tmp_path: Path) -> None:
    cfg = DataConfig(path=BUILTIN_CORPUS, cache_dir=str(tmp_path))
    first = load_dataset(cfg, block_size=256)
    stamps = [path.stat().st_mtime_ns for path in first.train_path.parent.iterdir()]
    second = load_dataset(cfg, block_size=256)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert first.description.startswith(f"Python {version} standard library sources, ")
    assert first.tokenizer.name == "char"
    assert first.train_tokens + first.val_tokens >= 4_000_000
    assert second.train_path == first.train_path
    assert [path.stat().st_mtime_ns for path in second.train_path.parent.iterdir()] == stamps


def test_builtin_corpus_excludes_tests() -> None:
    text = builtin_corpus_text(max_chars=10**9)
    headers = [line for line in text.splitlines() if line.startswith("# ---- ")]
    assert any(header.startswith("# ---- asyncio/") for header in headers)
    assert not any(header.startswith("# ---- test/") for header in headers)
    assert not any("/tests/" in header or "site-packages" in header for header in headers)


def test_load_path_not_found(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data.path: .*missing not found"):
        load_dataset(DataConfig(path=str(tmp_path / "missing")), block_size=8)


def test_load_dir_without_train_bin(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        load_dataset(DataConfig(path=str(tmp_path)), block_size=8)
    assert str(info.value) == f"data.path: {tmp_path} has no train.bin — run `gpttui prepare TEXT --out {tmp_path}` first"


def test_load_split_too_short(tmp_path: Path) -> None:
    directory = write_nanogpt_dir(tmp_path / "d", [0, 1] * 50, [0, 1] * 4, ["a", "b"])
    with pytest.raises(DataError, match=r"val.bin has 8 tokens, fewer than model.block_size \+ 1 = 9"):
        load_dataset(DataConfig(path=str(directory)), block_size=8)


def test_load_vocab_larger_than_model(tmp_path: Path) -> None:
    directory = write_nanogpt_dir(tmp_path / "d", [0, 1] * 50, [0, 1] * 50, CHARS)
    with pytest.raises(DataError, match="vocabulary of 50 tokens, larger than model.vocab_size = 32"):
        load_dataset(DataConfig(path=str(directory)), block_size=8, model_vocab_size=32)


def test_load_partial_token(tmp_path: Path) -> None:
    directory = write_nanogpt_dir(tmp_path / "d", [0, 1] * 50, [0, 1] * 50, ["a", "b"])
    with open(directory / "train.bin", "ab") as file:
        file.write(b"\x00")
    with pytest.raises(DataError, match="201 bytes, not a whole number of uint16 tokens"):
        load_dataset(DataConfig(path=str(directory)), block_size=8)


# --- batches ----------------------------------------------------------------


def batches(source, count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [source.next() for _ in range(count)]


def assert_same(left: list, right: list) -> None:
    assert len(left) == len(right)
    for (x1, y1), (x2, y2) in zip(left, right):
        assert torch.equal(x1, x2)
        assert torch.equal(y1, y2)


def test_sampler_shapes(counting_dataset: Dataset) -> None:
    x, y = BatchSampler(counting_dataset, "train", 4, 16, CPU, seed=1).next()
    assert x.shape == (4, 16)
    assert y.shape == (4, 16)
    assert x.dtype == torch.int64
    assert y.dtype == torch.int64


def test_sampler_targets_shifted(counting_dataset: Dataset) -> None:
    for x, y in batches(BatchSampler(counting_dataset, "val", 8, 16, CPU, seed=1), 5):
        assert torch.equal(y[:, :-1], x[:, 1:])
        assert torch.equal(y, (x + 1) % VOCAB)


def test_sampler_last_window(tmp_path: Path) -> None:
    # With block_size + 1 == tokens, offset 0 is the only valid window.
    directory = write_nanogpt_dir(tmp_path / "d", np.arange(17) % 3, np.arange(17) % 3, ["a", "b", "c"])
    dataset = load_dataset(DataConfig(path=str(directory)), block_size=16)
    x, y = BatchSampler(dataset, "train", 3, 16, CPU, seed=5).next()
    assert torch.equal(x, torch.arange(16).repeat(3, 1) % 3)
    assert torch.equal(y, torch.arange(1, 17).repeat(3, 1) % 3)


def test_sampler_reproducible(counting_dataset: Dataset) -> None:
    first = batches(BatchSampler(counting_dataset, "train", 4, 16, CPU, seed=7), 4)
    second = batches(BatchSampler(counting_dataset, "train", 4, 16, CPU, seed=7), 4)
    assert_same(first, second)


def test_sampler_seed_matters(counting_dataset: Dataset) -> None:
    x1, _ = BatchSampler(counting_dataset, "train", 8, 16, CPU, seed=7).next()
    x2, _ = BatchSampler(counting_dataset, "train", 8, 16, CPU, seed=8).next()
    x3, _ = BatchSampler(counting_dataset, "train", 8, 16, CPU, seed=-7).next()
    assert not torch.equal(x1, x2)
    assert not torch.equal(x1, x3)


def test_sampler_resume(counting_dataset: Dataset) -> None:
    sampler = BatchSampler(counting_dataset, "train", 4, 16, CPU, seed=3)
    batches(sampler, 2)
    state = sampler.state_dict()
    expected = batches(sampler, 3)
    resumed = BatchSampler(counting_dataset, "train", 4, 16, CPU, seed=3)
    resumed.load_state_dict(state)
    assert state == {"index": 2}
    assert_same(batches(resumed, 3), expected)


def test_prefetch_matches_sync(counting_dataset: Dataset) -> None:
    expected = batches(BatchSampler(counting_dataset, "train", 4, 16, CPU, seed=11), 6)
    with PrefetchingLoader(BatchSampler(counting_dataset, "train", 4, 16, CPU, seed=11), depth=2) as loader:
        assert_same(batches(loader, 6), expected)
        assert loader.last_wait_s >= 0.0


def test_prefetch_starts_at_sampler_index(counting_dataset: Dataset) -> None:
    expected = batches(BatchSampler(counting_dataset, "val", 4, 16, CPU, seed=2), 4)[2:]
    sampler = BatchSampler(counting_dataset, "val", 4, 16, CPU, seed=2)
    sampler.load_state_dict({"index": 2})
    with PrefetchingLoader(sampler) as loader:
        assert_same(batches(loader, 2), expected)


def test_prefetch_resume(counting_dataset: Dataset) -> None:
    expected = batches(BatchSampler(counting_dataset, "train", 4, 16, CPU, seed=4), 8)
    with PrefetchingLoader(BatchSampler(counting_dataset, "train", 4, 16, CPU, seed=4)) as loader:
        batches(loader, 3)
        state = loader.state_dict()
        batches(loader, 2)
        loader.load_state_dict(state)
        assert state == {"index": 3}
        assert_same(batches(loader, 5), expected[3:])


class _FailingSampler(BatchSampler):
    def sample(self, index: int):
        if index == 2:
            raise RuntimeError("disk read failed at batch 2")
        return super().sample(index)


def test_prefetch_reraises_errors(counting_dataset: Dataset) -> None:
    with PrefetchingLoader(_FailingSampler(counting_dataset, "train", 4, 16, CPU, seed=0)) as loader:
        batches(loader, 2)
        with pytest.raises(RuntimeError, match="disk read failed at batch 2"):
            loader.next()
        with pytest.raises(RuntimeError, match="disk read failed at batch 2"):
            loader.next()


def test_prefetch_close(counting_dataset: Dataset) -> None:
    loader = PrefetchingLoader(BatchSampler(counting_dataset, "train", 4, 16, CPU, seed=0), depth=1)
    loader.next()
    loader.close()
    assert not loader._thread.is_alive()
    with pytest.raises(RuntimeError, match="after close"):
        loader.next()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available")
def test_prefetch_cuda_matches_cpu(counting_dataset: Dataset) -> None:
    expected = batches(BatchSampler(counting_dataset, "train", 4, 16, CPU, seed=9), 4)
    cuda = torch.device("cuda")
    with PrefetchingLoader(BatchSampler(counting_dataset, "train", 4, 16, cuda, seed=9)) as loader:
        received = batches(loader, 4)
    assert all(x.device.type == "cuda" for x, _ in received)
    assert_same([(x.cpu(), y.cpu()) for x, y in received], expected)
