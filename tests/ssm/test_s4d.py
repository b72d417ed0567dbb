"""S4D has no library twin: its convolution mode and its recurrence mode check each other."""

import pytest
import torch

from apps.ssm.model import S4D, S4DConfig

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("init", ["lin", "inv"])
@pytest.mark.parametrize("d_model, state_size, length", [(3, 4, 17), (8, 16, 64), (5, 64, 100)])
def test_convolution_equals_recurrence(init, d_model, state_size, length):
    torch.manual_seed(d_model + state_size)
    layer = S4D(S4DConfig(d_model=d_model, state_size=state_size, init=init, dt_min=0.01, dt_max=0.5))
    u = torch.randn(2, length, d_model)
    with torch.no_grad():
        torch.testing.assert_close(layer(u), layer.recurrent(u), atol=1e-5, rtol=1e-5)


def test_kernel_is_c_times_powers_of_a_bar_times_b_bar():
    """The Vandermonde closed form against explicit powers A_bar^l, one channel at a time."""
    torch.manual_seed(0)
    layer = S4D(S4DConfig(d_model=2, state_size=8, init="inv"))
    with torch.no_grad():
        A_bar, B_bar, C = layer.discretize()
        explicit = torch.stack([2 * (C * A_bar**power * B_bar).sum(-1).real for power in range(12)], dim=1)
        torch.testing.assert_close(layer.kernel(12), explicit, atol=1e-6, rtol=1e-5)


def test_stable_kernel_decays():
    """Re(A) < 0 makes |A_bar| < 1: the kernel fades, so a distant input matters less than a recent one."""
    torch.manual_seed(0)
    layer = S4D(S4DConfig(d_model=4, state_size=16, dt_min=0.05, dt_max=0.1))
    with torch.no_grad():
        kernel = layer.kernel(2000).abs()
    assert (kernel[:, -100:].amax(1) < 0.01 * kernel[:, :100].amax(1)).all()


def test_odd_state_size_is_refused():
    with pytest.raises(ValueError, match="even"):
        S4DConfig(state_size=5)
