"""Shared fixtures: the shipped convolutional VAE, and one global random state per test."""

import pytest
import torch


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def conv_vae():
    from apps.vae_gan import side_by_side as sbs

    return sbs.load("conv_vae")
