"""Golden runners for the ACE-Step 1.5 condition encoder, FSQ tokenizer and detokenizer."""

from __future__ import annotations

import torch

from ace_core.v15.audio_tokenizer import AudioDetokenizer, AudioTokenizer, FSQuantizer
from ace_core.v15.condition_encoder import AceStep15ConditionEncoder
from ace_core.v15.config import AceStep15Config


def _prefixes(fx) -> list:
    prefix = fx.args["state_dict_prefix"]
    return [prefix] if isinstance(prefix, str) else list(prefix)


def load_strict(module: torch.nn.Module, fx, prefix: str) -> torch.nn.Module:
    """Load the fixture keys under ``prefix`` (stripped) with strict=True; returns the module in eval mode."""
    state = {k[len(prefix):]: v for k, v in fx.state_dict.items() if k.startswith(prefix)}
    assert state, f"{fx.stem}: no keys under {prefix!r}"
    module.load_state_dict(state, strict=True)
    return module.eval()


def _fixture_keys_all_used(fx) -> None:
    prefixes = _prefixes(fx)
    unused = [k for k in fx.state_dict if not any(k.startswith(p) for p in prefixes)]
    assert not unused, f"{fx.stem}: keys outside {prefixes}: {unused[:5]}"


def run_condition_encoder(fx) -> None:
    config = AceStep15Config.from_dict(fx.config)
    (prefix,) = _prefixes(fx)
    _fixture_keys_all_used(fx)
    model = load_strict(AceStep15ConditionEncoder(config, dtype=torch.float32), fx, prefix)
    inp = fx.inputs
    with torch.no_grad():
        out = model.encode(inp["text_hidden_states"], inp["text_attention_mask"],
                           inp["lyric_hidden_states"], inp["lyric_attention_mask"],
                           inp["refer_audio_acoustic_hidden_states_packed"], inp["refer_audio_order_mask"])
    fx.check("text_projected", out.text_projected)
    fx.check("lyric_encoder_last_hidden_state", out.lyric_hidden_states)
    fx.check("timbre_embs_unpacked", out.timbre_embs)
    fx.check("timbre_embs_mask", out.timbre_mask)
    fx.check("encoder_hidden_states", out.encoder_hidden_states)
    fx.check("encoder_attention_mask", out.encoder_attention_mask)


def run_fsq_tokenizer(fx) -> None:
    config = AceStep15Config.from_dict(fx.config)
    (prefix,) = _prefixes(fx)
    _fixture_keys_all_used(fx)
    assert list(fx.args.get("fsq_levels", config.fsq_input_levels)) == list(config.fsq_input_levels)
    assert fx.args.get("pool_window_size", config.pool_window_size) == config.pool_window_size
    model = load_strict(AudioTokenizer(config, dtype=torch.float32), fx, prefix)
    inp = fx.inputs
    with torch.no_grad():
        windows, _ = model.split_windows(inp["x"], inp["silence_latent"], inp["attention_mask"])
        pooled = model.pool(windows)
        quantized, indices, mask = model.tokenize(inp["x"], inp["silence_latent"], inp["attention_mask"])
        replayed = model.codes_to_quantized(indices)
    if "pooled" in fx.outputs:
        fx.check("pooled", pooled)
    fx.check("quantized", quantized)
    fx.check("indices", indices)
    fx.check("attention_mask", mask)
    # decoding the indices gives back exactly the quantized vectors
    fx.check("quantized", replayed)


def run_detokenizer(fx) -> None:
    config = AceStep15Config.from_dict(fx.config)
    _fixture_keys_all_used(fx)
    prefixes = _prefixes(fx)
    quant_prefix = next(p for p in prefixes if p.startswith("tokenizer."))
    detok_prefix = next(p for p in prefixes if p.startswith("detokenizer."))
    quantizer = load_strict(FSQuantizer(config.fsq_dim, config.fsq_input_levels,
                                        config.fsq_input_num_quantizers, dtype=torch.float32), fx, quant_prefix)
    detokenizer = load_strict(AudioDetokenizer(config, dtype=torch.float32), fx, detok_prefix)
    with torch.no_grad():
        quantized = quantizer.output_from_indices(fx.inputs["indices"])
        hints = detokenizer(quantized)
    fx.check("quantized", quantized)
    fx.check("hints_25hz", hints)


RUNNERS = {
    "v15.condition_encoder": run_condition_encoder,
    "v15.fsq_tokenizer": run_fsq_tokenizer,
    "v15.detokenizer": run_detokenizer,
}
