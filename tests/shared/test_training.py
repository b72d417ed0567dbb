"""The training helpers every topic uses."""

import torch

from shared.training import ExponentialMovingAverage


def test_moving_average_follows_its_formula_with_warmup():
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = ExponentialMovingAverage(model, decay=0.9)
    expected = 0.0
    for step in range(30):
        with torch.no_grad():
            model.weight.fill_(float(step + 1))
        ema.update(model)
        decay = min(0.9, (1 + step) / (10 + step))
        expected = decay * expected + (1 - decay) * (step + 1)
        assert abs(ema.model.weight.item() - expected) < 1e-4
    assert not ema.model.weight.requires_grad and ema.updates == 30


def test_moving_average_copies_buffers():
    model = torch.nn.BatchNorm1d(2)
    ema = ExponentialMovingAverage(model, decay=0.99)
    model(torch.randn(8, 2))
    ema.update(model)
    assert torch.equal(ema.model.running_mean, model.running_mean)
