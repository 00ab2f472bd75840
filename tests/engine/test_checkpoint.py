"""Atomic checkpoint writes and safe loads."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
import torch

from engine import checkpoint as ckpt


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pt"
    ckpt.save_atomic({"model": {"w": torch.arange(4.0)}, "iter_num": 3}, path)
    state = ckpt.load_checkpoint(path)
    assert state["iter_num"] == 3
    assert torch.equal(state["model"]["w"], torch.arange(4.0))
    assert list(tmp_path.iterdir()) == [path]


def test_failed_write_keeps_previous(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ckpt.pt"
    ckpt.save_atomic({"model": {"w": torch.ones(2)}, "iter_num": 1}, path)
    before = path.read_bytes()

    def disk_full(obj: object, handle: object) -> None:
        handle.write(b"partial")  # type: ignore[attr-defined]
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(ckpt.CheckpointError, match="No space left on device; the previous checkpoint is unchanged"):
        ckpt.save_atomic({"model": {"w": torch.zeros(2)}, "iter_num": 2}, path)
    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]


def test_truncated_checkpoint_rejected(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pt"
    ckpt.save_atomic({"model": {"w": torch.randn(1000)}}, path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ckpt.CheckpointError, match=r"is corrupt or truncated .*; resume from an earlier checkpoint"):
        ckpt.load_checkpoint(path)


def test_garbage_checkpoint_rejected(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pt"
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ckpt.CheckpointError, match="is corrupt or truncated"):
        ckpt.load_checkpoint(path)


def test_code_in_checkpoint_rejected(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pt"
    torch.save({"model": {}, "payload": print}, path)  # a global that weights_only refuses
    with pytest.raises(ckpt.CheckpointError, match="is corrupt or truncated"):
        ckpt.load_checkpoint(path)


def test_missing_checkpoint_message(tmp_path: Path) -> None:
    with pytest.raises(ckpt.CheckpointError, match=r"checkpoint .*nope.pt not found"):
        ckpt.load_checkpoint(tmp_path / "nope.pt")


def test_compiled_prefix_stripped(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pt"
    torch.save({"model": {"_orig_mod.lm_head.weight": torch.ones(1), "wpe": torch.zeros(1)}}, path)
    state = ckpt.load_checkpoint(path)
    assert sorted(state["model"]) == ["lm_head.weight", "wpe"]


def test_shape_mismatch_names_key() -> None:
    model = {"a": torch.zeros(2, 3), "b": torch.zeros(4)}
    saved = {"a": torch.zeros(2, 3), "b": torch.zeros(5)}
    with pytest.raises(ckpt.CheckpointError, match=r"b has shape \(5,\) but the model expects \(4,\)"):
        ckpt.check_compatible(model, saved, Path("ckpt.pt"))


def test_missing_key_named() -> None:
    with pytest.raises(ckpt.CheckpointError, match="lacks model key b"):
        ckpt.check_compatible({"a": torch.zeros(1), "b": torch.zeros(1)}, {"a": torch.zeros(1)}, Path("x"))


def test_output_dir_under_file_rejected(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ckpt.CheckpointError, match="is not writable"):
        ckpt.check_output_dir(blocker / "run", min_free_bytes=0)


def test_output_dir_too_little_space(tmp_path: Path) -> None:
    with pytest.raises(ckpt.CheckpointError, match="MiB free but a checkpoint needs about"):
        ckpt.check_output_dir(tmp_path / "run", min_free_bytes=1 << 62)


def test_rejected_pickle_message_gives_no_unsafe_advice(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pt"
    torch.save({"model": {}, "payload": print}, path)
    with pytest.raises(ckpt.CheckpointError) as info:
        ckpt.load_checkpoint(path)
    assert "weights_only" not in str(info.value)
    assert "it contains data other than tensors and plain values" in str(info.value)
