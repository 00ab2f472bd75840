"""Training FLOPs per token, peak FLOP/s per accelerator, and MFU.

MFU (model FLOPs utilization) is achieved model FLOP/s over the device's
peak for the dtype in use. The peak comes from a table of vendor figures
matched on the device name, or from a short matmul probe on CPU. A device
missing from the table gets no MFU rather than a borrowed figure.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from typing import Literal

import torch

DtypeName = Literal["float32", "bfloat16", "float16"]

FLOPS_FORMULA = (
    "6*N + 12*L*H*Q*T FLOPs per trained token (PaLM, Chowdhery et al. 2022, "
    "appendix B): N parameters excluding position embeddings, L layers, "
    "H heads, Q head size, T sequence length trained on. 6*N counts the "
    "forward and backward matmuls with weights, and 12*L*H*Q*T the attention "
    "scores and their weighted sums."
)


def flops_per_token(
    n_params_non_embedding: int, n_layer: int, n_head: int, head_dim: int, seq_len: int
) -> float:
    """Estimate training FLOPs (forward and backward) per token, as FLOPS_FORMULA states.

    Args:
        n_params_non_embedding: Parameters without the position embeddings.
            The token embedding counts because it is also the output layer.
        n_layer: Transformer blocks.
        n_head: Attention heads per block.
        head_dim: Width of one head (n_embd // n_head).
        seq_len: Sequence length actually trained on, which may be below
            block_size.
    """
    matmul_flops = 6 * n_params_non_embedding
    attention_flops = 12 * n_layer * n_head * head_dim * seq_len
    return float(matmul_flops + attention_flops)


def mfu(flops_per_token: float, tokens_per_s: float, peak_flops: float | None) -> float | None:
    """Compute model FLOPs utilization as a fraction (0.4 means 40%).

    Returns:
        None when the peak is unknown or not positive.
    """
    if peak_flops is None or peak_flops <= 0:
        return None
    return flops_per_token * tokens_per_s / peak_flops


@dataclass(frozen=True)
class PeakFlops:
    """Dense (no 2:4 sparsity) peak TFLOP/s of one accelerator model.

    None marks a dtype without its own matrix rate on that device, such as
    bf16 on Volta and Turing.
    """

    pattern: str
    """Regular expression searched in the device name, case-insensitive."""
    label: str
    """Vendor name of the model, for the source text."""
    bf16: float | None
    fp16: float | None
    tf32: float | None
    fp32: float


# Figures are the vendors' datasheet or whitepaper numbers, halved where
# only the 2:4-sparse rate is printed. For GeForce cards they are the FP16
# and BF16 tensor rates with FP32 accumulation, which PyTorch matmuls use,
# and not the doubled FP16-accumulate rates.
# NOTE: these were checked against datasheet figures as public spec pages
# quote them, not against the vendor PDFs directly.
# Rows are searched in order, so a variant comes before its family, and the
# \b anchors keep "A10" from matching "A100" and "H200" from matching "GH200".
PEAK_FLOPS_TABLE: tuple[PeakFlops, ...] = (
    # NVIDIA Blackwell datasheet: GB200 NVL72 per-GPU column (5 PF bf16,
    # 2.5 PF tf32 sparse) and HGX B200 column (4.5 PF bf16, 2.2 PF tf32 sparse).
    PeakFlops(r"\bGB200\b", "NVIDIA GB200 (B200 GPU)", 2500, 2500, 1250, 80),
    # NOTE: the HGX B200 fp32 figure is 75 in NVIDIA's table but 80 on some
    # secondary pages.
    PeakFlops(r"\bB200\b", "NVIDIA B200 (HGX)", 2250, 2250, 1100, 75),
    # NVIDIA GH200 datasheet: same Hopper GPU rates as H100 SXM.
    PeakFlops(r"\bGH200\b", "NVIDIA GH200", 989, 989, 494, 67),
    # NVIDIA H200 datasheet, NVL and SXM columns.
    PeakFlops(r"\bH200 NVL\b", "NVIDIA H200 NVL", 835, 835, 418, 60),
    PeakFlops(r"\bH200\b", "NVIDIA H200 SXM", 989, 989, 494, 67),
    # NVIDIA H100 datasheet, NVL, PCIe and SXM columns. CUDA reports the
    # SXM part as "NVIDIA H100 80GB HBM3", so plain H100 means SXM.
    PeakFlops(r"\bH100 NVL\b", "NVIDIA H100 NVL", 835, 835, 418, 60),
    PeakFlops(r"\bH100[ -]PCIe\b", "NVIDIA H100 PCIe", 756, 756, 378, 51),
    PeakFlops(r"\bH100\b", "NVIDIA H100 SXM", 989, 989, 494, 67),
    # NVIDIA A100 datasheet: the SXM4 and PCIe parts share these rates.
    PeakFlops(r"\bA100\b", "NVIDIA A100", 312, 312, 156, 19.5),
    # NOTE: NVIDIA publishes no datasheet for the AWS-only A10G. These are
    # third-party figures, about half the A10's tensor rate, and unconfirmed.
    PeakFlops(r"\bA10G\b", "NVIDIA A10G", 70, 70, 35, 31.2),
    # NVIDIA A10 datasheet.
    PeakFlops(r"\bA10\b", "NVIDIA A10", 125, 125, 62.5, 31.2),
    # NVIDIA L40S and L4 datasheets.
    PeakFlops(r"\bL40S\b", "NVIDIA L40S", 362, 362, 183, 91.6),
    PeakFlops(r"\bL4\b", "NVIDIA L4", 121, 121, 60, 30.3),
    # NVIDIA Ada whitepaper, RTX 4090 column. The 4090 D and laptop parts
    # have fewer SMs or lower clocks, so they stay unknown.
    PeakFlops(r"\bRTX 4090\b(?! D\b| Laptop)", "NVIDIA GeForce RTX 4090", 165.2, 165.2, 82.6, 82.6),
    # NVIDIA GA102 (Ampere) whitepaper, RTX 3090 column. The 3090 Ti and
    # laptop parts differ, so they stay unknown.
    PeakFlops(r"\bRTX 3090\b(?! Ti\b| Laptop)", "NVIDIA GeForce RTX 3090", 71, 71, 35.6, 35.6),
    # NVIDIA V100 datasheet, SXM2 column (the PCIe card is 112 / 14).
    # Volta has FP16 tensor cores only, and no bf16 or tf32 rate.
    PeakFlops(r"\bV100-PCIE\b", "NVIDIA V100 PCIe", None, 112, None, 14),
    PeakFlops(r"\bV100\b", "NVIDIA V100 SXM2", None, 125, None, 15.7),
    # NVIDIA T4 datasheet: FP16 tensor (mixed precision) and FP32 only.
    PeakFlops(r"\bT4\b", "NVIDIA T4", None, 65, None, 8.1),
    # AMD Instinct MI300X datasheet, where fp32 vector and matrix rates are equal.
    # NOTE: whether PyTorch on ROCm runs fp32 matmuls as TF32 (xf32) depends
    # on the ROCm and PyTorch versions, so the tf32 figure may overstate it.
    PeakFlops(r"\bMI300X\b", "AMD Instinct MI300X", 1307, 1307, 653.7, 163.4),
)


def lookup_peak_flops(device_name: str, dtype: DtypeName, tf32: bool) -> tuple[float | None, str]:
    """Find the dense peak FLOP/s for a device and matmul precision.

    Args:
        device_name: Name as `torch.cuda.get_device_name()` reports it.
        dtype: Precision of the model's matmuls.
        tf32: Whether float32 matmuls may run on TF32 tensor cores
            (`torch.backends.cuda.matmul.allow_tf32` or matmul precision "high").

    Returns:
        (FLOP/s, source text). FLOP/s is None when the device is not in the
        table or has no rate for that precision, and the text gives the reason.
    """
    row = _find_row(device_name)
    if row is None:
        return None, f"unknown device {device_name!r}: no peak FLOP/s in the table"

    if dtype == "bfloat16":
        tflops, precision = row.bf16, "bf16"
    elif dtype == "float16":
        tflops, precision = row.fp16, "fp16"
    elif dtype == "float32" and tf32 and row.tf32 is not None:
        tflops, precision = row.tf32, "tf32"
    elif dtype == "float32":
        tflops, precision = row.fp32, "fp32"
    else:
        raise ValueError(f"dtype must be 'float32', 'bfloat16' or 'float16', got {dtype!r}")

    if tflops is None:
        return None, f"table: {row.label} has no {precision} peak"
    return tflops * 1e12, f"table: {row.label} {precision} dense"


def _find_row(device_name: str) -> PeakFlops | None:
    for row in PEAK_FLOPS_TABLE:
        if re.search(row.pattern, device_name, flags=re.IGNORECASE):
            return row
    return None


def measure_cpu_peak_flops(dtype: torch.dtype = torch.float32, seconds: float = 0.25) -> float:
    """Measure the CPU's square-matmul FLOP/s, a stand-in for its peak.

    Picks the matrix size first: it doubles from 256 up to 1024 while one
    product takes under 1/16 of `seconds`, so dtypes without fast CPU
    kernels (bf16 and fp16 on many x86 parts) still finish in about
    `seconds`. Those sizing products also serve as warm-up. It then runs
    products with the current torch thread count for `seconds` and keeps the
    fastest. Callers label
    the result as the measured CPU matmul ceiling, because no datasheet
    figure exists for it.

    Returns:
        FLOP/s, counting 2 * n**3 per n x n product.
    """
    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating-point dtype, got {dtype}")
    if not seconds > 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")

    generator = torch.Generator().manual_seed(0)
    n = 256
    while True:
        a = torch.randn(n, n, generator=generator).to(dtype)
        b = torch.randn(n, n, generator=generator).to(dtype)
        out = torch.empty(n, n, dtype=dtype)
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        one_product_s = time.perf_counter() - start
        if n >= 1024 or one_product_s > seconds / 16:
            break
        n *= 2

    # The fastest single product, not the mean: on a shared machine other
    # processes slow some products down, and a ceiling must not sink with them.
    fastest = math.inf
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        fastest = min(fastest, time.perf_counter() - start)
    return 2 * n**3 / fastest
