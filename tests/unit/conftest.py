import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """The engine's tests run tiny models: one intra-op thread (two threads are slower on such
    tensors and two xdist workers with two threads each oversubscribe the two cores)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
