"""Golden runner for the ACE-Step 1.5 5 Hz LM: logits, greedy decoding, greedy decoding with CFG.

Greedy runs go through the real decoding loop (:func:`decode_grammar`, KV cache, left-padded CFG
rows) with an unconstrained grammar over the whole vocabulary at temperature 0.
"""

from __future__ import annotations

import torch

from ace_core.v15.lm.constraints import Allowed, Grammar, Segment
from ace_core.v15.lm.decode import decode_grammar
from ace_core.v15.lm.model import FiveHzLM
from ace_core.v15.lm.sampling import LMSampling
from ace_core.v15.qwen3 import Qwen3Config


class _AnyTokens(Segment):
    """``count`` tokens from the whole vocabulary."""

    def __init__(self, vocab: int, count: int):
        self.vocab, self.left = vocab, count

    def step(self):
        return Allowed(rows=slice(0, self.vocab)) if self.left else None

    def advance(self, token: int) -> bool:
        if not self.left:
            return False
        self.left -= 1
        return True


def run_lm(fx) -> None:
    cfg = Qwen3Config.from_dict(fx.config)
    lm = FiveHzLM(cfg, dtype=fx.dtype).eval()
    lm.load_state_dict(fx.state_dict, strict=True)  # tied: no lm_head.weight in the fixture
    ids, uncond = fx.inputs["input_ids"], fx.inputs["uncond_input_ids"]
    count = int(fx.args["greedy_new_tokens"])
    with torch.no_grad():
        fx.check("logits", lm.logits(lm(ids)))
        greedy = decode_grammar(lm, Grammar([_AnyTokens(cfg.vocab_size, count)]), ids[0].tolist(),
                                sampling=LMSampling(temperature=0.0, cfg_scale=1.0), generator=None)
        fx.check("greedy_ids", torch.tensor([greedy]))
        guided = decode_grammar(lm, Grammar([_AnyTokens(cfg.vocab_size, count)]), ids[0].tolist(),
                                negative=uncond[0].tolist(), generator=None,
                                sampling=LMSampling(temperature=0.0, cfg_scale=float(fx.args["cfg_scale"])))
        fx.check("greedy_cfg_ids", torch.tensor([guided]))


RUNNERS = {"v15.lm": run_lm}
