"""FLOPs per token, the peak-FLOP/s table and MFU, against hand-computed values."""

from __future__ import annotations

import math
import time

import pytest
import torch

from engine.flops import flops_per_token, lookup_peak_flops, measure_cpu_peak_flops, mfu
from engine.model import GPT, GPTConfig, padded_vocab_size


def test_char_model_flops_per_token() -> None:
    # Char model: 4 layers, 4 heads, C=128, block 64, 65 characters padded
    # to a vocabulary of 128, no bias.
    # Per layer 12*C^2 + 2*C (two LayerNorm weights) = 196,608 + 256 = 196,864.
    # N = 4*196,864 + wte 128*128 + ln_f 128 = 803,968 (wpe excluded).
    config = GPTConfig(block_size=64, vocab_size=padded_vocab_size(65), n_layer=4, n_head=4, n_embd=128, bias=False)
    n_params = GPT(config).num_params()
    assert n_params == 803_968

    # 6*803,968 = 4,823,808 and 12*4*4*32*64 = 393,216.
    assert flops_per_token(n_params, 4, 4, 32, 64) == 5_217_024


def test_gpt2_small_flops_per_token() -> None:
    # GPT-2 124M with the padded vocabulary 50,304 and bias.
    # Per layer 12*768^2 + 13*768 = 7,087,872, times 12 = 85,054,464.
    # N = 85,054,464 + wte 50,304*768 + ln_f 1,536 = 123,689,472.
    # The meta device skips allocating and initialising 124M parameters.
    with torch.device("meta"):
        n_params = GPT(GPTConfig()).num_params()
    assert n_params == 123_689_472

    # 6*N = 742,136,832 and 12*12*12*64*1024 = 113,246,208.
    assert flops_per_token(n_params, 12, 12, 64, 1024) == 855_383_040


def test_flops_scale_with_trained_length() -> None:
    assert flops_per_token(1000, 2, 2, 8, 16) == 6 * 1000 + 12 * 2 * 2 * 8 * 16
    assert flops_per_token(1000, 2, 2, 8, 32) == 6 * 1000 + 12 * 2 * 2 * 8 * 32


def test_lookup_h100_sxm_bf16() -> None:
    peak, source = lookup_peak_flops("NVIDIA H100 80GB HBM3", "bfloat16", tf32=False)
    assert peak == 989e12
    assert source == "table: NVIDIA H100 SXM bf16 dense"


def test_lookup_h100_pcie_not_sxm() -> None:
    peak, source = lookup_peak_flops("NVIDIA H100 PCIe", "bfloat16", tf32=False)
    assert peak == 756e12
    assert "H100 PCIe" in source


def test_lookup_fp32_with_and_without_tf32() -> None:
    tf32_peak, tf32_source = lookup_peak_flops("NVIDIA A100-SXM4-40GB", "float32", tf32=True)
    fp32_peak, fp32_source = lookup_peak_flops("NVIDIA A100-SXM4-40GB", "float32", tf32=False)
    assert tf32_peak == 156e12
    assert "tf32" in tf32_source
    assert fp32_peak == 19.5e12
    assert "fp32" in fp32_source


def test_lookup_case_insensitive() -> None:
    peak, _ = lookup_peak_flops("nvidia h200", "bfloat16", tf32=False)
    assert peak == 989e12


def test_lookup_a10_a10g_a100_distinct() -> None:
    a10, _ = lookup_peak_flops("NVIDIA A10", "float16", tf32=False)
    a10g, _ = lookup_peak_flops("NVIDIA A10G", "float16", tf32=False)
    a100, _ = lookup_peak_flops("NVIDIA A100 80GB PCIe", "float16", tf32=False)
    assert a10 == 125e12
    assert a10g == 70e12
    assert a100 == 312e12


def test_lookup_gh200_not_h200() -> None:
    _, source = lookup_peak_flops("NVIDIA GH200 480GB", "bfloat16", tf32=False)
    assert "GH200" in source


def test_lookup_v100_has_no_bf16() -> None:
    bf16, source = lookup_peak_flops("Tesla V100-SXM2-16GB", "bfloat16", tf32=False)
    fp32, _ = lookup_peak_flops("Tesla V100-SXM2-16GB", "float32", tf32=True)
    assert bf16 is None
    assert "no bf16" in source
    assert fp32 == 15.7e12


def test_lookup_unknown_device() -> None:
    peak, source = lookup_peak_flops("Quux Accelerator 9000", "bfloat16", tf32=False)
    assert peak is None
    assert source.startswith("unknown device")


def test_lookup_laptop_variant_unknown() -> None:
    peak, _ = lookup_peak_flops("NVIDIA GeForce RTX 4090 Laptop GPU", "bfloat16", tf32=False)
    assert peak is None


def test_mfu_value() -> None:
    # 855,383,040 FLOPs/token * 400,000 tokens/s = 342.15 TFLOP/s of 989.
    value = mfu(855_383_040, 400_000, 989e12)
    assert value == pytest.approx(342.153216e12 / 989e12)


def test_mfu_unknown_peak() -> None:
    assert mfu(1e9, 1e3, None) is None
    assert mfu(1e9, 1e3, 0.0) is None


def test_cpu_probe_positive_and_quick() -> None:
    start = time.perf_counter()
    flops = measure_cpu_peak_flops(torch.float32, seconds=0.05)
    elapsed = time.perf_counter() - start
    assert flops > 0
    assert math.isfinite(flops)
    assert elapsed < 2.0


def test_cpu_probe_rejects_integer_dtype() -> None:
    with pytest.raises(ValueError, match="floating-point"):
        measure_cpu_peak_flops(torch.int32)
