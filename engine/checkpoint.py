"""Atomic checkpoint writes and safe, nanoGPT-compatible loads.

A checkpoint contains nanoGPT's keys (model, optimizer, model_args, iter_num,
best_val_loss, config) so either project resumes the other's files, plus what
an exact resume needs here: RNG states, the batch samplers' positions and the
GradScaler. Loads always use weights_only=True, so a checkpoint cannot run code.
"""

from __future__ import annotations

import os
import pickle
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

COMPILED_PREFIX = "_orig_mod."
"""Prefix torch.compile's wrapper adds to every key of a compiled model's state_dict."""


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be written or read, with the path and what to do."""


def save_atomic(state: dict[str, Any], path: Path) -> None:
    """Write `state` to `path` so that a crash or full disk never leaves a partial file.

    The data goes to a temporary file in the same directory, is fsynced, then
    renamed over `path` with os.replace, which is atomic on POSIX and Windows.

    Raises:
        CheckpointError: the write failed; any previous file at `path` is intact.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates the file 0600. Keep the previous checkpoint's mode, or use
        # torch.save's usual 0644; reading the umask would briefly change it for every thread.
        os.chmod(tmp_name, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        with os.fdopen(fd, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except (OSError, RuntimeError) as exc:
        Path(tmp_name).unlink(missing_ok=True)
        raise CheckpointError(f"failed to write checkpoint {path}: {exc}; the previous checkpoint is unchanged") from exc
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable; not supported on every platform.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint onto the CPU with weights_only=True.

    Raises:
        CheckpointError: the file is missing, truncated, corrupt or not a checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found; pass the ckpt.pt of an earlier run")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, pickle.UnpicklingError):
            # torch's message goes on to suggest weights_only=False, which would run the file's code.
            first_line = "it contains data other than tensors and plain values"
        raise CheckpointError(
            f"checkpoint {path} is corrupt or truncated ({first_line}); resume from an earlier checkpoint"
        ) from exc
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"checkpoint {path} has no 'model' entry; it is not a gpttui or nanoGPT checkpoint")
    state["model"] = strip_compiled_prefix(state["model"])
    return state


def strip_compiled_prefix(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the `_orig_mod.` prefix that a torch.compile'd model's state_dict carries."""
    return {
        (key[len(COMPILED_PREFIX):] if key.startswith(COMPILED_PREFIX) else key): value
        for key, value in state_dict.items()
    }


def check_compatible(model_state: dict[str, torch.Tensor], checkpoint_state: dict[str, torch.Tensor], path: Path) -> None:
    """Raise CheckpointError naming the first key whose presence or shape differs."""
    missing = [key for key in model_state if key not in checkpoint_state]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks model key {missing[0]}; it was saved from another architecture")
    unexpected = [key for key in checkpoint_state if key not in model_state]
    if unexpected:
        raise CheckpointError(f"checkpoint {path} has unexpected model key {unexpected[0]}; it was saved from another architecture")
    for key, tensor in model_state.items():
        saved = checkpoint_state[key]
        if tuple(saved.shape) != tuple(tensor.shape):
            raise CheckpointError(
                f"checkpoint {path}: {key} has shape {tuple(saved.shape)} but the model expects "
                f"{tuple(tensor.shape)}; use the config the checkpoint was trained with"
            )


def check_output_dir(directory: Path, min_free_bytes: int) -> None:
    """Fail before training when the run directory cannot hold a checkpoint.

    Raises:
        CheckpointError: the directory cannot be created or written, or too little space is free.
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / ".write-test"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        raise CheckpointError(f"run directory {directory} is not writable ({exc.strerror}); choose another with --out-dir") from exc
    free = shutil.disk_usage(directory).free
    if free < min_free_bytes:
        raise CheckpointError(
            f"run directory {directory} has {free / 2**20:.0f} MiB free but a checkpoint needs about "
            f"{min_free_bytes / 2**20:.0f} MiB; free some space or choose another --out-dir"
        )
