"""GPT-2-style decoder-only transformer, readable top to bottom.

Design choices:
- Parameter names are GPT-2's as nanoGPT spells them (`transformer.wte`,
  `transformer.h.0.attn.c_attn`, `lm_head`, ...) and GPTConfig's fields are
  nanoGPT's `model_args` keys, so a nanoGPT checkpoint's `model_args` builds
  this model and its state_dict loads with strict=True.
- Attention runs through `F.scaled_dot_product_attention(is_causal=True)`, so
  the model registers no causal-mask buffer and its state_dict contains
  parameters only.
- Pre-norm blocks (LayerNorm before attention and before the MLP), GELU in
  its exact erf form, and LayerNorm and Linear biases switchable by
  `GPTConfig.bias`.
- The token embedding and the output projection share one tensor
  (`transformer.wte.weight is lm_head.weight`).
- All initialisation happens in `GPT._init_parameters`: N(0, 0.02) for
  Linear and Embedding weights, zero biases, unit LayerNorm weights, and
  N(0, 0.02 / sqrt(2 * n_layer)) for the residual projections (`c_proj`),
  because every block adds two of them to the residual stream.
- The optimizer gets every parameter, frozen ones included, so that a tensor
  unfrozen during a run starts training without a new optimizer.

Shape letters: B batch, T sequence length, C embedding width (n_embd),
H heads, D head size (C // H), V vocabulary size.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F

logger = logging.getLogger(__name__)


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which each position attends to itself and earlier ones."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.dropout = config.dropout
        # One matmul yields queries, keys and values for all heads.
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        D = C // self.n_head

        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)  # 3 x (B, T, C)
        q = q.view(B, T, self.n_head, D).transpose(1, 2)  # (B, H, T, D)
        k = k.view(B, T, self.n_head, D).transpose(1, 2)  # (B, H, T, D)
        v = v.view(B, T, self.n_head, D).transpose(1, 2)  # (B, H, T, D)

        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=True,
        )  # (B, H, T, D)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # heads side by side again
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    """Position-wise feed-forward layer, 4x wider than the residual stream."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        # nanoGPT uses the exact (erf) GELU. GPT-2 used the tanh approximation,
        # so logits of imported OpenAI weights differ slightly from GPT-2's own.
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.gelu(self.c_fc(x))  # (B, T, 4C)
        return self.dropout(self.c_proj(x))  # (B, T, C)


class Block(nn.Module):
    """Transformer block: pre-norm attention and MLP, each added to the residual."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x


@dataclass
class GPTConfig:
    """Model shape. Field names match nanoGPT's `model_args` checkpoint keys."""

    block_size: int = 1024
    """Maximum sequence length, and the number of position embeddings."""
    vocab_size: int = 50304
    """Rows of the token embedding: GPT-2's 50,257 padded up to a multiple of 64."""
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    """Dropout probability after embeddings, attention and MLP (0 disables it)."""
    bias: bool = True
    """Bias in every Linear and LayerNorm, as GPT-2 had."""

    def __post_init__(self) -> None:
        for key in ("block_size", "vocab_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, key)
            if value < 1:
                raise ValueError(f"GPTConfig.{key} must be >= 1, got {value}")
        if self.n_embd % self.n_head != 0:
            raise ValueError(
                f"GPTConfig.n_embd ({self.n_embd}) must be divisible by "
                f"n_head ({self.n_head}) so every head gets the same width"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPTConfig.dropout must be in [0, 1), got {self.dropout}")


def padded_vocab_size(vocab_size: int, multiple: int = 64) -> int:
    """Round a vocabulary size up to a multiple, so the (V, C) matmuls tile well.

    The extra rows are never targets, so training pushes their logits down.
    """
    if vocab_size < 1 or multiple < 1:
        raise ValueError(
            f"vocab_size and multiple must be >= 1, got vocab_size={vocab_size}, multiple={multiple}"
        )
    return math.ceil(vocab_size / multiple) * multiple


class GPT(nn.Module):
    """Decoder-only language model with GPT-2's layout and parameter names."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.vocab_size, config.n_embd),
                wpe=nn.Embedding(config.block_size, config.n_embd),
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
                ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
            )
        )
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        # Weight tying: one (V, C) tensor embeds tokens and scores them.
        # state_dict still lists it under both names, as nanoGPT's does.
        self.transformer.wte.weight = self.lm_head.weight
        self._init_parameters()

    def _init_parameters(self) -> None:
        residual_std = 0.02 / math.sqrt(2 * self.config.n_layer)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
            if isinstance(module, (nn.Linear, nn.LayerNorm)) and module.bias is not None:
                nn.init.zeros_(module.bias)
        # Each block adds two c_proj outputs to the residual stream. Dividing
        # their std by sqrt(2 * n_layer) makes the summed variance of all those
        # additions about that of one unscaled layer, if they are independent.
        for name, param in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(param, mean=0.0, std=residual_std)

    def num_params(self, non_embedding: bool = True) -> int:
        """Count parameters, each shared tensor once.

        Args:
            non_embedding: Leave out the position embeddings. The token
                embedding stays in because it is also the output layer's weight.
        """
        total = sum(p.numel() for p in self.parameters())
        if non_embedding:
            total -= self.transformer.wpe.weight.numel()
        return total

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Compute next-token logits and, given targets, the mean cross-entropy.

        Args:
            idx: Token ids, shape (B, T), with T <= block_size.
            targets: Next-token ids, shape (B, T). Positions set to -1 are ignored.

        Returns:
            (logits, loss). With targets, logits are (B, T, V) and loss is a
            scalar. Without, logits cover only the last position, (B, 1, V),
            because generation needs nothing else, and loss is None.
        """
        B, T = idx.shape
        if T > self.config.block_size:
            raise ValueError(
                f"sequence length {T} exceeds block_size {self.config.block_size}: "
                f"pass at most the last {self.config.block_size} tokens"
            )

        pos = torch.arange(T, dtype=torch.long, device=idx.device)  # (T,)
        tok_emb = self.transformer.wte(idx)  # (B, T, C)
        pos_emb = self.transformer.wpe(pos)  # (T, C), broadcast over B
        x = self.transformer.drop(tok_emb + pos_emb)
        for block in self.transformer.h:
            x = block(x)
        x = self.transformer.ln_f(x)  # (B, T, C)

        if targets is None:
            logits = self.lm_head(x[:, [-1], :])  # (B, 1, V), because a list index keeps T
            return logits, None
        logits = self.lm_head(x)  # (B, T, V)
        loss = F.cross_entropy(
            logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1
        )
        return logits, loss

    def configure_optimizers(
        self,
        weight_decay: float,
        learning_rate: float,
        betas: tuple[float, float],
        eps: float,
        device_type: str,
        fused: bool | None = None,
    ) -> torch.optim.AdamW:
        """Build AdamW with weight decay on matrices and none on vectors.

        Every tensor of 2 or more dimensions (embeddings and Linear weights)
        goes into the group named "decay", and biases and LayerNorm weights go
        into "no_decay".

        Args:
            weight_decay: Decoupled weight decay for the "decay" group.
            learning_rate: Initial learning rate for both groups.
            betas: Adam's (beta1, beta2).
            eps: Adam's denominator epsilon.
            device_type: Where the parameters live, as in `torch.device.type`.
            fused: None picks the fused kernel on CUDA only. True requests it on
                any device and falls back, with a warning, where this torch
                build has no fused AdamW for that device.
        """
        # Frozen parameters are included so that setting requires_grad later
        # needs no new optimizer. AdamW skips any parameter whose .grad is None,
        # so a frozen tensor is neither updated nor weight-decayed. That is true
        # only while its .grad stays None: zero_grad(set_to_none=True), the
        # default, clears a gradient left from before freezing.
        decay = [p for p in self.parameters() if p.dim() >= 2]
        no_decay = [p for p in self.parameters() if p.dim() < 2]
        groups = [
            {"params": decay, "weight_decay": weight_decay, "name": "decay"},
            {"params": no_decay, "weight_decay": 0.0, "name": "no_decay"},
        ]
        use_fused = _resolve_fused(fused, device_type)
        return torch.optim.AdamW(
            groups, lr=learning_rate, betas=betas, eps=eps, fused=use_fused
        )

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
        vocab_limit: int | None = None,
    ) -> torch.Tensor:
        """Sample tokens one at a time and append them to the prompt.

        Dropout stays as the module's mode leaves it, so call `eval()` first.

        Args:
            idx: Prompt token ids, shape (B, T). Prompts longer than block_size
                are allowed. Only the last block_size tokens condition each step.
            max_new_tokens: Number of tokens to append.
            temperature: Divisor of the logits. Below 1 sharpens the
                distribution and above 1 flattens it. Must be > 0.
            top_k: Sample only among the k most likely tokens (None: all).
            generator: Seeded RNG on idx's device, for reproducible samples.
            vocab_limit: Sample only ids below this, so the padding entries of
                a padded vocabulary, which decode to nothing, are never drawn.

        Returns:
            Token ids of shape (B, T + max_new_tokens).
        """
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if top_k is not None and top_k < 1:
            raise ValueError(f"top_k must be >= 1 or None, got {top_k}")

        block_size = self.config.block_size
        for _ in range(max_new_tokens):
            context = idx[:, -block_size:]  # (B, <= block_size)
            logits, _ = self(context)
            logits = logits[:, -1, :] / temperature  # (B, V)
            if vocab_limit is not None:
                logits[:, vocab_limit:] = float("-inf")
            if top_k is not None:
                kth_best = torch.topk(logits, min(top_k, logits.size(-1))).values[:, [-1]]
                logits = logits.masked_fill(logits < kth_best, float("-inf"))
            probs = F.softmax(logits, dim=-1)
            next_token = torch.multinomial(probs, num_samples=1, generator=generator)  # (B, 1)
            idx = torch.cat((idx, next_token), dim=1)
        return idx


def _resolve_fused(fused: bool | None, device_type: str) -> bool:
    if "fused" not in inspect.signature(torch.optim.AdamW).parameters:
        return False
    if fused is None:
        return device_type == "cuda"
    if fused and not _fused_adamw_available(device_type):
        logger.warning(
            "fused AdamW is not available on device type %r in torch %s; "
            "using the unfused implementation",
            device_type,
            torch.__version__,
        )
        return False
    return fused


@functools.cache
def _fused_adamw_available(device_type: str) -> bool:
    # Which devices have fused AdamW kernels varies by torch version, and CPU
    # got them later than CUDA. torch checks only at the first step(), so one
    # step on a one-element tensor is the reliable test.
    # A device this build lacks raises AssertionError ("cuda" in a CPU build)
    # or NotImplementedError, which is a RuntimeError.
    try:
        probe = torch.zeros(1, device=device_type, requires_grad=True)
        probe.grad = torch.zeros_like(probe)
        torch.optim.AdamW([probe], fused=True).step()
    except (RuntimeError, AssertionError):
        return False
    return True
