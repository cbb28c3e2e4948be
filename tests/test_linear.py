"""The oneDNN float32 linear (ace_core.linear): same results as F.linear, safe fallbacks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ace_core import linear as L


@pytest.fixture
def onednn_on():
    old = L.set_onednn_enabled(True)
    yield L.onednn_available()
    L.set_onednn_enabled(old)


def _data(seed: int = 0, shape=(2, 7, 48), out: int = 40):
    g = torch.Generator().manual_seed(seed)
    x, w = torch.randn(*shape, generator=g), torch.randn(out, shape[-1], generator=g) * 0.1
    return x, w, torch.randn(out, generator=g)


def test_linear_equals_f_linear_in_every_layout(onednn_on):
    x, w, b = _data()
    with torch.no_grad():
        for args in ((x, w, b), (x, w, None), (x[:, ::2], w, b), (x.transpose(0, 1), w, b), (x[0, 0], w, b),
                     (x, torch.randn(48, 40).t(), b), (x[:, :0], w, b)):
            torch.testing.assert_close(L.linear(*args), F.linear(*args), atol=1e-5, rtol=1e-5)


def test_module_keeps_nn_linear_keys_and_hooks(onednn_on):
    x, w, b = _data(1)
    lin = L.Linear(48, 40)
    assert isinstance(lin, torch.nn.Linear) and set(lin.state_dict()) == {"weight", "bias"}
    lin.load_state_dict({"weight": w, "bias": b})
    handle = lin.register_forward_hook(lambda m, i, o: o * 2)
    with torch.no_grad():
        torch.testing.assert_close(lin(x), 2 * F.linear(x, w, b), atol=1e-5, rtol=1e-5)
    handle.remove()


def test_gradients_bf16_and_disabled_take_f_linear(onednn_on):
    x, w, b = _data(2)
    lin = L.Linear(48, 40)
    out = lin(x)  # grad enabled, parameters require grad: the autograd path
    out.sum().backward()
    assert lin.weight.grad is not None
    xb, wb = x.bfloat16(), w.bfloat16()
    with torch.no_grad():
        assert torch.equal(L.linear(xb, wb), F.linear(xb, wb))
        L.set_onednn_enabled(False)
        assert torch.equal(L.linear(x, w, b), F.linear(x, w, b))
