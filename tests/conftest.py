"""Shared test set-up: small thread counts (2-core CI), deterministic seeds, a non-interactive backend."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("FERKIT_NO_PROGRESS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def one_thread():
    """One torch thread for a test (files opt in with ``pytestmark = pytest.mark.usefixtures("one_thread")``):
    on a shared 2-core CPU two OpenMP threads spin and make small training steps several times slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def module_one_thread():
    """One torch thread for a whole test file (``pytestmark = pytest.mark.usefixtures("module_one_thread")``)."""
    from ferkit_testmodels import single_thread

    with single_thread():
        yield


@pytest.fixture(scope="session")
def detector():
    """ferkit's MTCNN face detector at its defaults, loaded once for the session."""
    from ferkit.data.faces import FaceDetector

    return FaceDetector()


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)
    yield
