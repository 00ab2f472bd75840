"""Device selection and process/device memory sampling."""

from __future__ import annotations

from dataclasses import dataclass

import psutil
import torch

from engine.config import DtypeName, SystemConfig


@dataclass(frozen=True)
class DeviceInfo:
    device: torch.device
    name: str
    """Human name, for example "NVIDIA H100 80GB HBM3" or "CPU (16 threads)"."""
    autocast_dtype: torch.dtype
    """float32 means autocast is off."""


def select_device(cfg: SystemConfig) -> DeviceInfo:
    """Resolve system.device and system.dtype to a torch device and autocast dtype.

    Raises:
        ValueError: the requested device or dtype is not available here.
    """
    requested = cfg.device
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"system.device is {cfg.device!r} but CUDA is not available; use --set system.device=\"cpu\"")
    if requested == "mps" and not torch.backends.mps.is_available():
        raise ValueError("system.device is 'mps' but MPS is not available; use --set system.device=\"cpu\"")

    device = torch.device(requested)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        if index >= torch.cuda.device_count():
            raise ValueError(f"system.device {cfg.device!r}: only {torch.cuda.device_count()} CUDA devices here")
        device = torch.device("cuda", index)
        name = torch.cuda.get_device_name(index)
    else:
        name = f"{device.type.upper()} ({torch.get_num_threads()} threads)"
    return DeviceInfo(device, name, _autocast_dtype(cfg.dtype, device))


def _autocast_dtype(name: DtypeName, device: torch.device) -> torch.dtype:
    if name == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if name == "float16" and device.type == "cpu":
        raise ValueError("system.dtype float16 is for CUDA; on a CPU use bfloat16 or float32")
    if name == "bfloat16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError("system.dtype bfloat16 is not supported by this GPU; use float16")
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


@dataclass(frozen=True)
class MemorySample:
    gpu_allocated_bytes: int | None
    gpu_reserved_bytes: int | None
    gpu_peak_bytes: int | None
    rss_bytes: int
    cpu_percent: float


class SystemSampler:
    """Reads process RSS, CPU % and CUDA allocator counters without a device sync.

    torch.cuda.memory_allocated and friends read the caching allocator's host-side
    counters, so they cost microseconds and never wait for the GPU.
    """

    def __init__(self, device: torch.device) -> None:
        self._device = device
        self._process = psutil.Process()
        self._process.cpu_percent(None)  # the first call only starts the measurement interval

    def sample(self) -> MemorySample:
        allocated = reserved = peak = None
        if self._device.type == "cuda":
            allocated = torch.cuda.memory_allocated(self._device)
            reserved = torch.cuda.memory_reserved(self._device)
            peak = torch.cuda.max_memory_allocated(self._device)
        return MemorySample(
            gpu_allocated_bytes=allocated,
            gpu_reserved_bytes=reserved,
            gpu_peak_bytes=peak,
            rss_bytes=self._process.memory_info().rss,
            cpu_percent=self._process.cpu_percent(None),
        )
