"""Test helpers: tiny random ACE-Step v1 checkpoints written in the published layouts.

Not used at run time. ``write_tiny_checkpoint(path, layout)`` writes a small random model that the
real loader (:func:`ace_core.v1.loader.load_v1`) reads like the published files:

* ``layout="comfy"``: one ``.safetensors`` file in ComfyUI's all-in-one layout, with a real (tiny)
  SentencePiece model embedded as ``text_encoders.spiece_model``;
* ``layout="official"``: the four-folder layout (``ace_step_transformer/``, ``music_dcae_f8c8/``,
  ``music_vocoder/``, ``umt5-base/``) with ``config.json`` files and a ``tokenizer.json``.

Also the pieces: :func:`tiny_spiece_model_bytes` (a SentencePiece model trained in memory on a few
sentences) and :func:`spiece_to_tokenizer_json` (the same vocabulary as a HF ``tokenizer.json``).
"""

from __future__ import annotations

import functools
import io
import json
import math
from pathlib import Path
from typing import Union

import torch

__all__ = [
    "tiny_spiece_model_bytes",
    "spiece_to_tokenizer_json",
    "tiny_reference_configs",
    "write_tiny_checkpoint",
    "TINY_SENTENCES",
]

TINY_SENTENCES = (
    "pop rock, energetic, female vocals, 120 bpm",
    "ambient piano, calm, slow tempo, reverb",
    "hip hop beat with heavy bass and drums",
    "acoustic guitar folk song about the sea",
    "electronic dance music, synth lead, euphoric",
    "jazz trio, upright bass, brushed drums, smooth",
    "orchestral strings, cinematic, epic choir",
    "lo-fi chill, vinyl crackle, mellow keys",
)


@functools.lru_cache(maxsize=4)
def tiny_spiece_model_bytes(vocab_size: int = 96) -> bytes:
    """A real SentencePiece unigram model trained in memory (deterministic, ~10 ms).

    Special ids follow T5: ``<pad>`` = 0, ``</s>`` = 1, ``<unk>`` = 2, no ``<s>``. The piece count is
    at most ``vocab_size`` (the trainer may stop earlier on so little text).
    """
    import sentencepiece as spm

    out = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(TINY_SENTENCES * 4),
        model_writer=out,
        vocab_size=vocab_size,
        model_type="unigram",
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        hard_vocab_limit=False,
        character_coverage=1.0,
        num_threads=1,
        minloglevel=2,
    )
    return out.getvalue()


def spiece_to_tokenizer_json(spiece: bytes) -> str:
    """The vocabulary of a SentencePiece unigram model as a HF ``tokenizer.json`` text.

    Built with the ``tokenizers`` library (Unigram model, NFKC + space collapsing, Metaspace), which
    encodes plain text like the SentencePiece model does. A ``</s>`` post-processor is included, as in
    the published T5 files.
    """
    import sentencepiece as spm
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    sp = spm.SentencePieceProcessor(model_proto=spiece)
    vocab = [(sp.id_to_piece(i), float(sp.get_score(i))) for i in range(sp.get_piece_size())]
    tk = Tokenizer(models.Unigram(vocab, unk_id=sp.unk_id(), byte_fallback=False))
    tk.normalizer = normalizers.Sequence(
        [normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " "), normalizers.Strip()]
    )
    tk.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tk.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    specials = [sp.id_to_piece(i) for i in range(sp.get_piece_size()) if sp.is_control(i) or sp.is_unknown(i)]
    tk.add_special_tokens(specials)
    eos = sp.id_to_piece(sp.eos_id())
    tk.post_processor = processors.TemplateProcessing(
        single=f"$A {eos}", pair=f"$A {eos} $B {eos}", special_tokens=[(eos, sp.eos_id())]
    )
    return json.dumps(json.loads(tk.to_str()), ensure_ascii=False, indent=1)


def tiny_reference_configs() -> dict:
    """Reference-named configs of the tiny random model (a few hundred thousand parameters).

    Latent geometry is the real one (8 channels x 16 rows, 4096 samples per frame at 44.1 kHz) and
    the lyric vocabulary keeps its real size (6693), so real lyric token ids work; everything else is
    shrunk. The UMT5 vocabulary (128) covers the tiny SentencePiece model.
    """
    return {
        "dit": {
            "in_channels": 8, "num_layers": 2, "inner_dim": 32, "attention_head_dim": 16,
            "num_attention_heads": 2, "mlp_ratio": 2.5, "out_channels": 8, "max_position": 32768,
            "rope_theta": 1000000.0, "speaker_embedding_dim": 16, "text_embedding_dim": 32,
            "ssl_encoder_depths": [8, 8], "ssl_names": ["mert", "m-hubert"], "ssl_latent_dims": [24, 16],
            "lyric_encoder_vocab_size": 6693, "lyric_hidden_size": 32, "patch_size": [16, 1],
            "max_height": 16, "max_width": 32768,
            "lyric_encoder_overrides": {"output_size": 32, "attention_heads": 2, "linear_units": 64, "num_blocks": 2},
        },
        "umt5": {
            "vocab_size": 128, "d_model": 32, "d_kv": 8, "d_ff": 48, "num_layers": 2, "num_heads": 4,
            "relative_attention_num_buckets": 8, "relative_attention_max_distance": 20,
            "layer_norm_epsilon": 1e-6, "feed_forward_proj": "gated-gelu",
        },
        "dcae": {
            "in_channels": 2, "latent_channels": 8, "attention_head_dim": 8,
            "encoder_block_types": ["ResBlock", "ResBlock", "ResBlock", "EfficientViTBlock"],
            "decoder_block_types": ["ResBlock", "ResBlock", "ResBlock", "EfficientViTBlock"],
            "encoder_block_out_channels": [8, 16, 16, 32], "decoder_block_out_channels": [8, 16, 16, 32],
            "encoder_layers_per_block": [1, 1, 2, 2], "decoder_layers_per_block": [2, 1, 2, 2],
            "encoder_qkv_multiscales": [[], [], [5], [5]], "decoder_qkv_multiscales": [[], [], [5], [5]],
            "upsample_block_type": "interpolate", "downsample_block_type": "Conv",
            "decoder_norm_types": "rms_norm", "decoder_act_fns": "silu", "scaling_factor": 0.41407,
        },
        "vocoder": {
            "input_channels": 128, "depths": [1, 1, 2, 1], "dims": [16, 24, 32, 32], "drop_path_rate": 0.0,
            "kernel_sizes": [7], "upsample_rates": [8, 8, 8], "upsample_kernel_sizes": [16, 16, 16],
            "resblock_kernel_sizes": [3, 7, 11, 13],
            "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5], [1, 3, 5]],
            "num_mels": 32, "upsample_initial_channel": 32, "use_template": False,
            "pre_conv_kernel_size": 13, "post_conv_kernel_size": 13, "sampling_rate": 44100,
            "n_fft": 2048, "win_length": 2048, "hop_length": 512, "f_min": 40, "f_max": 16000, "n_mels": 128,
        },
    }


def _random_tensor(key: str, dtype: torch.dtype, shape: tuple, g: torch.Generator) -> torch.Tensor:
    """Plausible random values by role: unit-ish activations, norm scales near 1, small biases."""
    name = key.rsplit(".", 1)[-1]
    if len(shape) == 0:
        return torch.tensor(1.0, dtype=dtype)
    r = torch.randn(shape, generator=g)
    if name == "bias":
        t = 0.02 * r
    elif name == "weight_g":
        t = 1.0 + 0.1 * r
    elif name == "gamma":
        t = 0.1 + 0.01 * r
    elif "scale_shift_table" in key or "pos_bias" in name:
        t = 0.1 * r
    elif key.endswith("relative_attention_bias.weight"):
        t = 0.3 * r
    elif key.endswith(("shared.weight", "embed_tokens.weight")):
        t = r
    elif key.endswith("lyric_embs.weight"):
        t = 0.5 * r
    elif len(shape) == 1:
        t = 1.0 + 0.05 * r  # norm scales
    else:
        t = r / math.sqrt(max(1, math.prod(shape[1:])))
    return t.to(dtype)


def write_tiny_checkpoint(path: Union[str, Path], layout: str = "comfy", seed: int = 0,
                          dtype: torch.dtype = torch.float32) -> Path:
    """Write a tiny random ACE-Step v1 in a published layout; returns what to pass to ``load_v1``.

    ``layout="comfy"``: ``path`` is the ``.safetensors`` file to write (or a folder, which gets
    ``ace_step_v1_tiny.safetensors``); the SentencePiece model is embedded and the configs go into
    the file metadata (shapes alone cannot give every size). ``layout="official"``: ``path`` is the
    root folder; each component folder gets its file and ``config.json``, ``umt5-base/`` gets
    ``tokenizer.json``. Same ``seed`` -> the same weights in both layouts. Includes the keys a
    published file has but the models skip (DiT projectors / ``add_*``, vocoder mel buffers,
    ``logit_scale``).
    """
    from ..audio.mel import LogMelSpectrogram
    from ..loading.safetensors_io import write_safetensors
    from .layouts import COMFY_SPIECE_KEY
    from .loader import CONFIG_METADATA_KEY, COMFY_LOGIT_SCALE, _config_dict, _typed_configs, checkpoint_specs

    ref = tiny_reference_configs()
    configs = _typed_configs(ref, where="tiny config")
    spiece = tiny_spiece_model_bytes()
    mel = LogMelSpectrogram(configs["vocoder"].mel)
    fixed = {"mel_transform.spectrogram.window": mel.window.float(), "mel_transform.mel_scale.fb": mel.fb.float()}
    g = torch.Generator().manual_seed(int(seed))

    def produce(key: str, specs: dict) -> torch.Tensor:
        dt, shape = specs[key]
        if key == COMFY_SPIECE_KEY:
            return torch.frombuffer(bytearray(spiece), dtype=torch.uint8)
        if key.endswith("logit_scale"):
            return torch.tensor(COMFY_LOGIT_SCALE, dtype=dt)
        for name, value in fixed.items():
            if key.endswith(name):
                return value.to(dt)
        return _random_tensor(key, dt, shape, g)

    path = Path(path)
    if layout == "comfy":
        if path.suffix != ".safetensors":
            path.mkdir(parents=True, exist_ok=True)
            path = path / "ace_step_v1_tiny.safetensors"
        path.parent.mkdir(parents=True, exist_ok=True)
        specs = checkpoint_specs(configs, "comfy", dtype=dtype)[""]
        specs[COMFY_SPIECE_KEY] = (torch.uint8, (len(spiece),))
        meta = {"format": "pt", CONFIG_METADATA_KEY: json.dumps({c: _config_dict(v) for c, v in configs.items()})}
        write_safetensors(path, specs, lambda k: produce(k, specs), meta)
        return path
    if layout == "official":
        files = checkpoint_specs(configs, "official", dtype=dtype)
        config_json = {
            "ace_step_transformer": {"_class_name": "Transformer2DModel", "_diffusers_version": "0.27.2",
                                     **{k: v for k, v in ref["dit"].items() if k != "lyric_encoder_overrides"}},
            "music_dcae_f8c8": {"_class_name": "AutoencoderDC", **ref["dcae"]},
            "music_vocoder": {"_class_name": "ADaMoSHiFiGANV1", **ref["vocoder"]},
            "umt5-base": {"architectures": ["UMT5EncoderModel"], "model_type": "umt5", "dropout_rate": 0.1,
                          "is_gated_act": True, "dense_act_fn": "gelu_new", **ref["umt5"]},
        }
        for rel, specs in files.items():
            file = path / rel
            file.parent.mkdir(parents=True, exist_ok=True)
            write_safetensors(file, specs, lambda k, specs=specs: produce(k, specs), {"format": "pt"})
            (file.parent / "config.json").write_text(json.dumps(config_json[file.parent.name], indent=2))
        tok = path / "umt5-base"
        (tok / "tokenizer.json").write_text(spiece_to_tokenizer_json(spiece), encoding="utf-8")
        (tok / "special_tokens_map.json").write_text(json.dumps(
            {"eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}, indent=2))
        (tok / "tokenizer_config.json").write_text(json.dumps(
            {"tokenizer_class": "T5Tokenizer", "model_max_length": 256, "eos_token": "</s>",
             "pad_token": "<pad>", "unk_token": "<unk>", "extra_ids": 0}, indent=2))
        return path
    raise ValueError(f"layout: expected 'comfy' or 'official', got {layout!r}")
