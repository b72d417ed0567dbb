"""
Two ways to make our GPT (model.py) generate faster on a CPU, used only when asked.

At batch 1 a decoding step is a chain of matrix-vector products, so its time is the time to stream the
weights from memory (the calibration note measured about 85% of the step there). Both modes therefore
change how the weights are stored, not what the model computes:

- `use_fast_linears(gpt)`, exact: the wide layers (more outputs than inputs: c_attn, c_fc, the output
  head) keep a column-major copy of their weight for inference, which the CPU BLAS kernel streams about
  2x faster. Same parameters, same state dict, same logits; greedy tokens equal Hugging Face's.
- `quantize_int8(gpt)`, approximate: a copy whose Linear layers hold int8 weights with one scale per
  output row, 4x fewer bytes per step; logits move by about the quantization error.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F


class FastLinear(nn.Linear):
    """
    nn.Linear (same parameters, same state dict) that multiplies wide layers faster at inference.

    The CPU BLAS kernel streams a weight about 2x faster when it is stored column by column if out > in:
    measured here with weights out of cache, 256 -> 4096 takes 190-260 us instead of 510-640 us,
    256 -> 768 55 us instead of 100 us (for out < in, 1024 -> 256, the usual row-major order is the
    fast one). So when no gradient is needed a wide layer calls the same F.linear on a column-major copy
    of its weight, made once and remade whenever the weight changes (new storage, dtype or device, or an
    in-place update, which bumps its version counter). With gradients it is a plain nn.Linear.
    """

    _column_major_weight = None  # same (out, in) values, stored column by column
    _copied_from = None  # identity of the weight it was copied from

    def forward(self, x):
        weight = self.weight
        if self.out_features > self.in_features and not torch.is_grad_enabled():
            key = (weight.data_ptr(), weight._version, weight.dtype, weight.device)
            if self._copied_from != key:
                self._column_major_weight = weight.detach().t().contiguous().t()
                self._copied_from = key
            weight = self._column_major_weight
        return F.linear(x, weight, self.bias)


def use_fast_linears(model: nn.Module) -> nn.Module:
    """Turn every wide nn.Linear of `model` (out > in) into a FastLinear holding the very same parameters
    (tied weights stay tied, the state dict is unchanged). In place; returns the model."""
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is nn.Linear and child.out_features > child.in_features:
                fast = torch.nn.utils.skip_init(
                    FastLinear, child.in_features, child.out_features, bias=child.bias is not None
                )
                fast.weight, fast.bias = child.weight, child.bias
                setattr(module, name, fast)
    return model


class Int8Linear(nn.Module):
    """
    A frozen nn.Linear whose weight is stored in int8 with one scale per output row:

        W[o, :] ~ scale[o] * W_int8[o, :],   scale[o] = max_i |W[o, i]| / 127

    (symmetric absmax, "vector-wise" quantization as in LLM.int8(), Dettmers et al. 2022, sec. 3).
    A batch-1 decoding step is bound by reading the weights from memory, and int8 reads 4x fewer bytes
    than fp32. Inputs and outputs are fp32; inside, PyTorch's int8 weight-only CPU kernel
    (torch._weight_int8pack_mm) multiplies bf16 activations by the int8 rows. That kernel needs
    in_features to be a multiple of 16 (it returns garbage otherwise), so other sizes, and other
    devices, use a plain dequantizing matmul in fp32: the same int8 weights, just not faster.
    """

    def __init__(self, linear: nn.Linear):
        super().__init__()
        w = linear.weight.detach().float()  # (out, in)
        scale = w.abs().amax(dim=1).clamp(min=1e-12) / 127  # (out,)
        scale = scale.to(torch.bfloat16)  # the kernel wants bf16 scales; quantize against the rounded ones
        self.register_buffer("weight", torch.round(w / scale.float()[:, None]).clamp(-127, 127).to(torch.int8))
        self.register_buffer("scale", scale)
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().float().clone())
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.use_kernel = hasattr(torch, "_weight_int8pack_mm") and self.in_features % 16 == 0

    def forward(self, x):
        shape = x.shape  # (..., in)
        x = x.reshape(-1, self.in_features)  # (N, in)
        if self.use_kernel and x.is_cpu:
            y = torch._weight_int8pack_mm(x.to(torch.bfloat16).contiguous(), self.weight, self.scale).float()
        else:
            y = F.linear(x, self.weight.to(x.dtype)) * self.scale.to(x.dtype)
        if self.bias is not None:
            y = y + self.bias
        return y.view(*shape[:-1], self.out_features)  # (..., out)


def quantize_int8(model: nn.Module) -> nn.Module:
    """
    The fast mode: a copy for inference whose Linear layers, the output head included, keep their weights
    in int8 (Int8Linear); embeddings, LayerNorms, biases, activations and the KV cache stay fp32. Not
    exact: logits move by about the quantization error, so greedy tokens can part from the fp32 model's
    (and Hugging Face's) where two candidates are nearly tied. `model` is untouched.
    """
    quantized = copy.deepcopy(model).eval()
    for module in list(quantized.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.Linear):
                setattr(module, name, Int8Linear(child))
    return quantized
