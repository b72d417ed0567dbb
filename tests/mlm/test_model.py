"""Mathematical properties of the encoder where no reference twin exists: rotary scores depend on the offset
only, checkpointing leaves the gradients unchanged, learned positions refuse what their table lacks."""

import pytest
import torch

from apps.mlm.model import (
    EncoderConfig,
    MaskedLanguageModel,
    inverse_frequencies,
    rotary_angles,
    rotate_pairs,
    sinusoidal_table,
)


def tiny(kind: str, **changes) -> MaskedLanguageModel:
    torch.manual_seed(0)
    config = EncoderConfig(
        vocab_size=40,
        hidden_size=16,
        num_layers=3,
        num_heads=2,
        intermediate_size=32,
        position_kind=kind,
        max_positions=24,
        dropout=0.1,
        **changes,
    )
    return MaskedLanguageModel(config)


def test_rotary_score_depends_on_the_offset_only():
    head_size, length = 16, 200
    query, key = torch.randn(2, 1, 1, 1, head_size, generator=torch.Generator().manual_seed(0))
    cos, sin = rotary_angles(torch.arange(length), head_size)
    queries = rotate_pairs(query.expand(1, 1, length, head_size), cos, sin)[0, 0]
    keys = rotate_pairs(key.expand(1, 1, length, head_size), cos, sin)[0, 0]
    scores = queries @ keys.T  # scores[m, n]
    for offset in (-37, -1, 0, 5, 120):
        diagonal = torch.diagonal(scores, offset=-offset)  # all (m, n) with m - n = offset
        assert diagonal.numel() > 10
        torch.testing.assert_close(diagonal, diagonal[0].expand_as(diagonal), atol=1e-4, rtol=0)
    assert not torch.allclose(torch.diagonal(scores, 0)[0], torch.diagonal(scores, -5)[0])  # but it does depend on it
    # a rotation keeps lengths
    torch.testing.assert_close(queries.norm(dim=-1), query.norm().expand(length))


def test_sinusoid_of_a_shifted_position_is_a_rotation_of_the_original():
    dim, shift = 16, 7
    table = sinusoidal_table(torch.arange(50), dim).double()
    angles = shift * inverse_frequencies(dim)
    cos, sin = angles.cos(), angles.sin()
    sin_part, cos_part = table[:, 0::2], table[:, 1::2]
    # sin(a + b) = sin a cos b + cos a sin b; cos(a + b) = cos a cos b - sin a sin b
    torch.testing.assert_close(sin_part[:-shift] * cos + cos_part[:-shift] * sin, sin_part[shift:], atol=1e-6, rtol=0)
    torch.testing.assert_close(cos_part[:-shift] * cos - sin_part[:-shift] * sin, cos_part[shift:], atol=1e-6, rtol=0)


@pytest.mark.parametrize("kind", ["learned", "sinusoidal", "rotary"])
def test_checkpointing_gives_identical_gradients_and_loss(kind):
    ids = torch.randint(40, (4, 20), generator=torch.Generator().manual_seed(1))
    labels = torch.where(torch.rand(ids.shape, generator=torch.Generator().manual_seed(2)) < 0.3, ids, -100)
    gradients = []
    for checkpointing in (False, True):
        model = tiny(kind, checkpointing=checkpointing).train()  # dropout on: the recomputation must replay it
        torch.manual_seed(5)
        loss = model.masked_loss(ids, labels)
        loss.backward()
        gradients.append((loss.detach(), {name: p.grad.clone() for name, p in model.named_parameters()}))
    (plain_loss, plain), (checkpointed_loss, checkpointed) = gradients
    assert torch.equal(plain_loss, checkpointed_loss)
    for name, gradient in plain.items():
        assert torch.equal(gradient, checkpointed[name]), name


def test_checkpointing_keeps_fewer_activations():
    ids = torch.randint(40, (4, 20), generator=torch.Generator().manual_seed(1))
    saved_bytes = []
    for checkpointing in (False, True):
        model = tiny("rotary", checkpointing=checkpointing).train()
        total = [0]

        def pack(tensor, total=total):
            total[0] += tensor.numel() * tensor.element_size()
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            model(ids).sum()
        saved_bytes.append(total[0])
    assert saved_bytes[1] < saved_bytes[0] / 2


def test_learned_positions_refuse_a_longer_input_and_clamping_is_explicit():
    model = tiny("learned").eval()
    with pytest.raises(ValueError, match="Learned positions stop at 24"):
        model(torch.zeros(1, 25, dtype=torch.long))
    clamped = model(torch.zeros(1, 25, dtype=torch.long), position_ids=torch.arange(25).clamp(max=23))
    assert clamped.shape == (1, 25, 40)
    # sinusoidal and rotary encoders take any length
    for kind in ("sinusoidal", "rotary"):
        assert tiny(kind).eval()(torch.zeros(1, 60, dtype=torch.long)).shape == (1, 60, 40)


def test_config_rejects_unknown_kinds_and_odd_rotary_heads():
    with pytest.raises(ValueError, match="position_kind"):
        EncoderConfig(position_kind="alibi")
    with pytest.raises(ValueError, match="even"):
        EncoderConfig(hidden_size=12, num_heads=4, position_kind="rotary")
