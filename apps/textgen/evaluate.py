"""Held-out likelihood of the GPT, scored so that models with different tokenizers and context
lengths compare fairly: every held-out token is scored exactly once, with as much context as fits.

Sliding windows of `block_size` tokens move by `stride`; the first window scores all its tokens, each
later window only its last `stride` tokens (which then see at least block_size - stride tokens of
context). The first held-out token is predicted after the end-of-text token, the GPT's only way of
saying "a new document starts here". bits/char = total nats / characters / ln 2.
"""

import torch

from apps.textgen.model import GPT


@torch.no_grad()
def gpt_total_nll(model: GPT, token_ids: torch.Tensor, stride: int | None = None, eot_id: int | None = None) -> float:
    """Sum of -ln p(token | preceding tokens) over every token of a 1-D id tensor."""
    model.eval()
    block_size = model.config.block_size
    stride = stride or block_size // 2
    eot_id = model.config.vocab_size - 1 if eot_id is None else eot_id
    tokens = torch.cat([torch.tensor([eot_id]), token_ids.cpu().long()])  # (N + 1,): inputs start at <eot>
    device = next(model.parameters()).device
    total, scored = 0.0, 0  # scored: how many of the N real tokens have been scored so far
    while scored < len(token_ids):
        end = min(scored + stride, len(token_ids)) if scored else min(block_size, len(token_ids))
        start = max(0, end - block_size)
        inputs = tokens[start:end].unsqueeze(0).to(device)  # predicts tokens[start + 1 : end + 1]
        targets = tokens[start + 1 : end + 1].clone().unsqueeze(0).to(device)
        targets[:, : scored - start] = -100  # already scored by an earlier window
        logits, _ = model(inputs)
        total += torch.nn.functional.cross_entropy(
            logits[0].float(), targets[0], ignore_index=-100, reduction="sum"
        ).item()
        scored = end
    return total
