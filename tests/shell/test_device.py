import pytest
import torch

from shared import device


def test_auto_picks_an_existing_device():
    assert device.pick_device("auto").type in {"cpu", "cuda", "mps"}


def test_cpu_is_always_available():
    assert device.pick_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: the error cannot occur")
def test_cuda_without_gpu_is_a_clear_error():
    with pytest.raises(device.DeviceError, match="no CUDA GPU"):
        device.pick_device("cuda")


def test_unknown_device_is_rejected():
    with pytest.raises(device.DeviceError, match="choose one of"):
        device.pick_device("tpu")


def test_configure_sets_threads_and_current_device():
    before = torch.get_num_threads()
    try:
        assert device.configure("cpu", threads=1) == torch.device("cpu")
        assert torch.get_num_threads() == 1 and device.current_device() == torch.device("cpu")
    finally:
        torch.set_num_threads(before)


def test_gpu_task_is_a_no_op_without_spaces():
    def work(x):
        return x + 1

    assert device.gpu_task(work)(1) == 2
    assert device.gpu_task(duration=5)(work)(1) == 2


def test_describe_lists_device_and_versions():
    info = device.describe()
    assert info["torch"] == torch.__version__.split("+")[0] or info["torch"].startswith(torch.__version__.split("+")[0])
    assert "device" in info
