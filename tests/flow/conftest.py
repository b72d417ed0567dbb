"""Every flow test starts from the same global random state, so none depends on the order tests run in."""

import pytest
import torch


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)
