"""GPT model: nanoGPT names, weight tying, counts, init, optimizer groups, sampling."""

from __future__ import annotations

import math

import pytest
import torch

from engine.model import GPT, GPTConfig, padded_vocab_size

TINY = dict(block_size=8, vocab_size=32, n_layer=2, n_head=2, n_embd=16, dropout=0.0)

# nanoGPT's state_dict keys for a 2-layer model with bias, in module order.
NANOGPT_LAYER_KEYS = [
    "ln_1.weight",
    "ln_1.bias",
    "attn.c_attn.weight",
    "attn.c_attn.bias",
    "attn.c_proj.weight",
    "attn.c_proj.bias",
    "ln_2.weight",
    "ln_2.bias",
    "mlp.c_fc.weight",
    "mlp.c_fc.bias",
    "mlp.c_proj.weight",
    "mlp.c_proj.bias",
]
NANOGPT_KEYS = (
    ["transformer.wte.weight", "transformer.wpe.weight"]
    + [f"transformer.h.{i}.{key}" for i in range(2) for key in NANOGPT_LAYER_KEYS]
    + ["transformer.ln_f.weight", "transformer.ln_f.bias", "lm_head.weight"]
)


def tiny_model(bias: bool = True, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(**TINY, bias=bias))


def test_state_dict_keys_match_nanogpt() -> None:
    model = tiny_model()
    assert list(model.state_dict().keys()) == NANOGPT_KEYS


def test_named_parameters_skip_tied_head() -> None:
    names = [name for name, _ in tiny_model().named_parameters()]
    assert names == [key for key in NANOGPT_KEYS if key != "lm_head.weight"]


def test_no_bias_keys_without_bias() -> None:
    keys = list(tiny_model(bias=False).state_dict().keys())
    assert not any(key.endswith(".bias") for key in keys)
    # Six biases per layer and ln_f's.
    assert len(keys) == len(NANOGPT_KEYS) - 2 * 6 - 1


def test_nanogpt_state_dict_loads_strict() -> None:
    model = tiny_model()
    shapes = {key: tensor.shape for key, tensor in model.state_dict().items()}
    torch.manual_seed(1)
    checkpoint = {key: torch.randn(shapes[key]) for key in NANOGPT_KEYS}
    checkpoint["lm_head.weight"] = checkpoint["transformer.wte.weight"].clone()

    result = model.load_state_dict(checkpoint, strict=True)

    assert result.missing_keys == []
    assert result.unexpected_keys == []
    expected = checkpoint["transformer.h.1.mlp.c_fc.weight"]
    assert torch.equal(model.transformer.h[1].mlp.c_fc.weight, expected)
    assert torch.equal(model.lm_head.weight, checkpoint["lm_head.weight"])


def test_nanogpt_model_args_build_config() -> None:
    model_args = dict(n_layer=2, n_head=2, n_embd=16, block_size=8, bias=False, vocab_size=32, dropout=0.1)
    config = GPTConfig(**model_args)
    assert config.n_layer == 2
    assert config.bias is False
    assert config.dropout == 0.1


def test_config_rejects_indivisible_heads() -> None:
    with pytest.raises(ValueError, match="n_embd"):
        GPTConfig(n_embd=10, n_head=3)


def test_tied_weights_share_storage() -> None:
    model = tiny_model()
    assert model.transformer.wte.weight is model.lm_head.weight
    wte_ptr = model.transformer.wte.weight.data_ptr()
    assert wte_ptr == model.lm_head.weight.data_ptr()


def test_num_params_with_bias() -> None:
    # Per layer with C=16: ln_1 32, c_attn 16*48+48, attn c_proj 16*16+16,
    # ln_2 32, c_fc 16*64+64, mlp c_proj 64*16+16 = 3280.
    # Total = wte 32*16 + wpe 8*16 + 2*3280 + ln_f 32 = 7232.
    model = tiny_model(bias=True)
    assert model.num_params(non_embedding=False) == 7232
    assert model.num_params() == 7232 - 128


def test_num_params_without_bias() -> None:
    # Per layer: ln_1 16 + 768 + 256 + ln_2 16 + 1024 + 1024 = 3104.
    # Total = 512 + 128 + 2*3104 + ln_f 16 = 6864.
    model = tiny_model(bias=False)
    assert model.num_params(non_embedding=False) == 6864
    assert model.num_params() == 6864 - 128


def test_padded_vocab_size() -> None:
    assert padded_vocab_size(65) == 128
    assert padded_vocab_size(50257) == 50304
    assert padded_vocab_size(64) == 64
    assert padded_vocab_size(10, multiple=8) == 16


def test_init_std_of_residual_projections() -> None:
    torch.manual_seed(0)
    n_layer = 4
    model = GPT(GPTConfig(block_size=8, vocab_size=64, n_layer=n_layer, n_head=4, n_embd=128))
    expected = 0.02 / math.sqrt(2 * n_layer)

    c_proj = torch.cat([p.flatten() for n, p in model.named_parameters() if n.endswith("c_proj.weight")])
    c_fc = torch.cat([block.mlp.c_fc.weight.flatten() for block in model.transformer.h])

    assert c_proj.std().item() == pytest.approx(expected, rel=0.03)
    assert c_fc.std().item() == pytest.approx(0.02, rel=0.03)
    assert model.transformer.wte.weight.std().item() == pytest.approx(0.02, rel=0.03)


def test_init_biases_zero_and_norms_one() -> None:
    model = tiny_model()
    block = model.transformer.h[0]
    assert torch.count_nonzero(block.attn.c_attn.bias).item() == 0
    assert torch.count_nonzero(block.mlp.c_proj.bias).item() == 0
    assert torch.equal(block.ln_1.weight, torch.ones(16))
    assert torch.count_nonzero(model.transformer.ln_f.bias).item() == 0


def test_forward_shapes_with_targets() -> None:
    model = tiny_model()
    idx = torch.randint(0, 32, (3, 8))
    logits, loss = model(idx, idx)
    assert logits.shape == (3, 8, 32)
    assert loss is not None
    assert loss.shape == ()


def test_forward_without_targets_last_position() -> None:
    model = tiny_model()
    idx = torch.randint(0, 32, (3, 5))
    logits, loss = model(idx)
    full_logits, _ = model(idx, idx)
    assert logits.shape == (3, 1, 32)
    assert loss is None
    assert torch.allclose(logits[:, 0], full_logits[:, -1], atol=1e-6)


def test_forward_is_causal() -> None:
    model = tiny_model()
    idx = torch.randint(0, 32, (1, 8))
    changed = idx.clone()
    changed[0, -1] = (idx[0, -1] + 1) % 32
    logits, _ = model(idx, idx)
    changed_logits, _ = model(changed, changed)
    assert torch.allclose(logits[:, :-1], changed_logits[:, :-1], atol=1e-6)
    assert not torch.allclose(logits[:, -1], changed_logits[:, -1])


def test_loss_at_init_near_log_vocab() -> None:
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=16, vocab_size=64, n_layer=2, n_head=2, n_embd=64))
    idx = torch.randint(0, 64, (8, 16))
    targets = torch.randint(0, 64, (8, 16))
    _, loss = model(idx, targets)
    assert loss is not None
    assert loss.item() == pytest.approx(math.log(64), abs=0.1)


def test_loss_ignores_minus_one_targets() -> None:
    model = tiny_model()
    idx = torch.randint(0, 32, (2, 8))
    targets = idx.clone()
    targets[:, 4:] = -1
    logits, loss = model(idx, targets)
    expected = torch.nn.functional.cross_entropy(logits[:, :4].reshape(-1, 32), targets[:, :4].reshape(-1))
    assert loss is not None
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_too_long_sequence_raises() -> None:
    model = tiny_model()
    idx = torch.zeros(1, 9, dtype=torch.long)
    with pytest.raises(ValueError, match="exceeds block_size 8"):
        model(idx)


def names_by_group(model: GPT, optimizer: torch.optim.Optimizer) -> dict[str, set[str]]:
    name_of = {id(p): n for n, p in model.named_parameters()}
    return {g["name"]: {name_of[id(p)] for p in g["params"]} for g in optimizer.param_groups}


def test_optimizer_groups_by_dimension() -> None:
    model = tiny_model()
    optimizer = model.configure_optimizers(0.1, 1e-3, (0.9, 0.95), 1e-8, "cpu")
    groups = names_by_group(model, optimizer)

    assert [g["name"] for g in optimizer.param_groups] == ["decay", "no_decay"]
    assert optimizer.param_groups[0]["weight_decay"] == 0.1
    assert optimizer.param_groups[1]["weight_decay"] == 0.0
    assert "transformer.wte.weight" in groups["decay"]
    assert "transformer.wpe.weight" in groups["decay"]
    assert "transformer.h.0.attn.c_attn.weight" in groups["decay"]
    assert "transformer.h.1.mlp.c_proj.weight" in groups["decay"]
    assert "transformer.h.0.ln_1.weight" in groups["no_decay"]
    assert "transformer.h.0.attn.c_attn.bias" in groups["no_decay"]
    assert "transformer.ln_f.bias" in groups["no_decay"]
    # Decay: wte, wpe and 4 matrices per layer. No decay: 8 vectors per layer and ln_f's 2.
    assert len(groups["decay"]) == 2 + 4 * 2
    assert len(groups["no_decay"]) == 8 * 2 + 2


def test_optimizer_includes_frozen_parameters() -> None:
    model = tiny_model()
    model.transformer.wpe.weight.requires_grad_(False)
    optimizer = model.configure_optimizers(0.1, 1e-3, (0.9, 0.95), 1e-8, "cpu")
    total = sum(len(g["params"]) for g in optimizer.param_groups)
    assert total == len(list(model.parameters()))
    assert "transformer.wpe.weight" in names_by_group(model, optimizer)["decay"]


def train_steps(model: GPT, optimizer: torch.optim.Optimizer, steps: int) -> None:
    idx = torch.randint(0, 32, (2, 8))
    for _ in range(steps):
        _, loss = model(idx, idx)
        assert loss is not None
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def test_frozen_parameter_unchanged_by_steps() -> None:
    model = tiny_model()
    frozen = model.transformer.wpe.weight
    frozen.requires_grad_(False)
    before = frozen.detach().clone()
    trained_before = model.transformer.h[0].mlp.c_fc.weight.detach().clone()
    optimizer = model.configure_optimizers(0.5, 1e-2, (0.9, 0.95), 1e-8, "cpu")

    train_steps(model, optimizer, 3)

    assert torch.equal(frozen, before)
    assert not torch.equal(model.transformer.h[0].mlp.c_fc.weight, trained_before)


def test_unfrozen_parameter_trains_again() -> None:
    model = tiny_model()
    model.transformer.wpe.weight.requires_grad_(False)
    optimizer = model.configure_optimizers(0.1, 1e-2, (0.9, 0.95), 1e-8, "cpu")
    train_steps(model, optimizer, 1)
    model.transformer.wpe.weight.requires_grad_(True)
    before = model.transformer.wpe.weight.detach().clone()

    train_steps(model, optimizer, 1)

    assert not torch.equal(model.transformer.wpe.weight, before)


def test_fused_choice_per_device() -> None:
    model = tiny_model()
    args = (0.1, 1e-3, (0.9, 0.95), 1e-8)
    assert model.configure_optimizers(*args, "cpu").defaults["fused"] is False
    # This torch build has fused AdamW kernels for CPU, so an explicit True stays.
    assert model.configure_optimizers(*args, "cpu", fused=True).defaults["fused"] is True
    assert model.configure_optimizers(*args, "cpu", fused=False).defaults["fused"] is False


def test_fused_falls_back_without_kernels() -> None:
    model = tiny_model()
    if torch.cuda.is_available():
        pytest.skip("CUDA is available, so 'cuda' is no unsupported device here")
    optimizer = model.configure_optimizers(0.1, 1e-3, (0.9, 0.95), 1e-8, "cuda", fused=True)
    assert optimizer.defaults["fused"] is False


def test_generate_appends_tokens() -> None:
    model = tiny_model().eval()
    prompt = torch.zeros(2, 3, dtype=torch.long)
    out = model.generate(prompt, max_new_tokens=5)
    assert out.shape == (2, 8)
    assert torch.equal(out[:, :3], prompt)
    assert out.min().item() >= 0
    assert out.max().item() < 32


def test_generate_past_block_size() -> None:
    model = tiny_model().eval()
    out = model.generate(torch.zeros(1, 6, dtype=torch.long), max_new_tokens=10)
    assert out.shape == (1, 16)


def test_generate_reproducible_with_generator() -> None:
    model = tiny_model().eval()
    prompt = torch.zeros(1, 2, dtype=torch.long)
    first = model.generate(prompt, 12, temperature=1.5, generator=torch.Generator().manual_seed(7))
    second = model.generate(prompt, 12, temperature=1.5, generator=torch.Generator().manual_seed(7))
    assert torch.equal(first, second)


def test_generate_top_k_one_is_greedy() -> None:
    model = tiny_model().eval()
    prompt = torch.tensor([[1, 2, 3]])
    out = model.generate(prompt, 1, top_k=1)
    logits, _ = model(prompt)
    assert out[0, -1].item() == logits[0, -1].argmax().item()


def test_generate_rejects_zero_temperature() -> None:
    model = tiny_model()
    with pytest.raises(ValueError, match="temperature"):
        model.generate(torch.zeros(1, 1, dtype=torch.long), 1, temperature=0.0)


def test_generate_vocab_limit_excludes_padding() -> None:
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=8, vocab_size=64, n_layer=1, n_head=1, n_embd=8)).eval()
    generator = torch.Generator().manual_seed(0)
    out = model.generate(torch.zeros(4, 1, dtype=torch.long), 50, generator=generator, vocab_limit=5)
    assert int(out.max()) < 5
