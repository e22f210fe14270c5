import os
import tempfile

# Tests never touch the network and stay small on a 2-core machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as twistlm/__init__.py, before torch loads
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# caches (units, converted GGUF text LMs) go to a per-session folder, not the user's ~/.cache
os.environ.setdefault("TWISTLM_CACHE", tempfile.mkdtemp(prefix="twistlm-test-cache-"))

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
