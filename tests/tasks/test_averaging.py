"""The moving average of a model's weights (train.ema_decay)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from elmokit.tasks.averaging import WeightAverage


def test_average_follows_the_documented_decay():
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    avg = WeightAverage(model, decay=0.5)
    expected = [p.detach().clone() for p in model.parameters()]
    for n in range(1, 6):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        d = min(0.5, (1 + n) / (10 + n))
        assert avg.current_decay() == pytest.approx(d)
        avg.update(model)
        expected = [d * e + (1 - d) * p.detach() for e, p in zip(expected, model.parameters())]
        for e, a in zip(expected, avg.model.parameters()):
            torch.testing.assert_close(a, e)
    assert avg.updates == 5


def test_average_is_frozen_in_eval_mode_and_round_trips():
    model = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5))
    avg = WeightAverage(model, decay=0.9)
    assert not avg.model.training and not any(p.requires_grad for p in avg.model.parameters())
    assert all(p.requires_grad for p in model.parameters())  # the trained model is untouched
    avg.update(model)
    other = WeightAverage(nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5)), decay=0.9)
    other.load_state_dict(avg.state_dict())
    assert other.updates == 1
    for a, b in zip(avg.model.parameters(), other.model.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.1])
def test_decay_outside_the_open_interval_is_refused(decay):
    with pytest.raises(ValueError, match="decay must be in"):
        WeightAverage(nn.Linear(1, 1), decay)
