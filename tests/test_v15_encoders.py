"""Unit tests for the 1.5 condition encoder, FSQ tokenizer and detokenizer (golden parity: test_golden.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from ace_core.errors import InputError
from ace_core.v15.audio_tokenizer import AudioDetokenizer, AudioTokenizer, FSQuantizer
from ace_core.v15.blocks import RMSNorm
from ace_core.v15.condition_encoder import (
    AceStep15ConditionEncoder,
    pack_sequences,
    unpack_clips,
)
from ace_core.v15.config import AceStep15Config, xl_config

MANIFESTS = Path(__file__).resolve().parents[2] / "shared" / "reference" / "checkpoints"

# hidden-set-like: other widths/heads, window 2, 3 layers per stack (sliding, full, sliding)
TINY = dict(hidden_size=24, intermediate_size=40, num_hidden_layers=6, num_attention_heads=3,
            num_key_value_heads=1, head_dim=8, sliding_window=2, text_hidden_dim=20,
            num_lyric_encoder_hidden_layers=3, num_timbre_encoder_hidden_layers=3,
            num_attention_pooler_hidden_layers=2, fsq_dim=24)
TINY_XL = dict(TINY, hidden_size=40, intermediate_size=48, encoder_hidden_size=24,
               encoder_intermediate_size=40, encoder_num_attention_heads=3, encoder_num_key_value_heads=1)


def randomize(module: nn.Module, seed: int = 0) -> nn.Module:
    """Fill every parameter from a seeded generator (RMSNorm scales around 1)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for sub in module.modules():
            for name, p in sub.named_parameters(recurse=False):
                noise = torch.randn(p.shape, generator=gen) * 0.2
                p.copy_(noise + 1.0 if isinstance(sub, RMSNorm) else noise)
    return module.eval()


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def encoder(xl: bool = False, seed: int = 0) -> AceStep15ConditionEncoder:
    return randomize(AceStep15ConditionEncoder(AceStep15Config(**(TINY_XL if xl else TINY))), seed)


def condition_inputs(order, batch=2, lt=7, ll=9, tr=5, seed=0):
    text = randn(batch, lt, 20, seed=seed)
    text_mask = torch.ones(batch, lt, dtype=torch.int64)
    text_mask[-1, lt - 3:] = 0
    lyrics = randn(batch, ll, 20, seed=seed + 1)
    lyric_mask = torch.ones(batch, ll, dtype=torch.int64)
    lyric_mask[0, ll - 5:] = 0  # long padding: some sliding-window queries see no valid key
    refer = randn(len(order), tr, 64, seed=seed + 2)
    return text, text_mask, lyrics, lyric_mask, refer, torch.tensor(order, dtype=torch.int64)


# --- packing / unpacking -----------------------------------------------------------------------

def naive_unpack(embs, order, batch):
    per_item = [[embs[n] for n in range(len(order)) if order[n] == b] for b in range(batch)]
    slots = max((len(p) for p in per_item), default=0)
    out = torch.zeros(batch, slots, embs.shape[-1])
    mask = torch.zeros(batch, slots, dtype=torch.bool)
    for b, clips in enumerate(per_item):
        for r, clip in enumerate(clips):
            out[b, r], mask[b, r] = clip, True
    return out, mask


@pytest.mark.parametrize("order,batch", [([1, 0, 1, 1], 2), ([0, 0, 1], 2), ([2, 0, 2], 3), ([1], 2), ([], 2)])
def test_unpack_clips_groups_by_item_in_clip_order(order, batch):
    embs = randn(len(order), 4)
    out, mask = unpack_clips(embs, torch.tensor(order, dtype=torch.int64), batch)
    want, want_mask = naive_unpack(embs, order, batch)
    assert torch.equal(out, want) and torch.equal(mask, want_mask)


def test_pack_sequences_moves_valid_rows_first_and_keeps_padded_values():
    a, b = randn(2, 4, 3, seed=1), randn(2, 3, 3, seed=2)
    ma = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    mb = torch.tensor([[1, 0, 1], [0, 0, 0]])
    packed, mask = pack_sequences(a, ma, b, mb)
    for row in range(2):
        rows = torch.cat([a[row], b[row]])
        valid = torch.cat([ma[row], mb[row]]).bool()
        want = torch.cat([rows[valid], rows[~valid]])
        assert torch.equal(packed[row], want)
        assert mask[row].tolist() == [i < int(valid.sum()) for i in range(7)]


# --- condition encoder -------------------------------------------------------------------------

@pytest.mark.parametrize("xl", [False, True])
def test_condition_encoder_shapes_and_masks(xl):
    model = encoder(xl)
    args = condition_inputs([1, 0, 1, 1])
    with torch.no_grad():
        out = model.encode(*args)
        ehs, emask = model(*args)
    assert torch.equal(ehs, out.encoder_hidden_states) and torch.equal(emask, out.encoder_attention_mask)
    assert ehs.shape == (2, 9 + 3 + 7, 24) and emask.dtype == torch.bool
    # item 0: 4 lyrics + 1 clip + 7 text valid; item 1: 9 lyrics + 3 clips + 4 text
    assert emask.sum(1).tolist() == [12, 16]
    assert out.timbre_mask.tolist() == [[True, False, False], [True, True, True]]
    assert torch.equal(out.timbre_embs[0, 1:], torch.zeros(2, 24))
    assert torch.isfinite(ehs).all()


@pytest.mark.parametrize("xl", [False, True])
def test_timbre_follows_clip_order_whatever_the_packing(xl):
    """Clips of [1,0,1,1] regrouped as [0,1,1,1] (same order inside item 1): identical output."""
    model = encoder(xl)
    text, tmask, lyrics, lmask, refer, order = condition_inputs([1, 0, 1, 1])
    perm = torch.tensor([1, 0, 2, 3])
    with torch.no_grad():
        a = model.encode(text, tmask, lyrics, lmask, refer, order)
        b = model.encode(text, tmask, lyrics, lmask, refer[perm], order[perm])
        alone = model.timbre_encoder(refer)  # (N, H): one clip never sees another
    assert torch.equal(a.encoder_hidden_states, b.encoder_hidden_states)
    assert torch.allclose(a.timbre_embs[1], alone[[0, 2, 3]], atol=1e-6)
    assert torch.allclose(a.timbre_embs[0, 0], alone[1], atol=1e-6)


def test_item_without_clips_gets_zero_timbre_and_matches_its_solo_run():
    model = encoder()
    text, tmask, lyrics, lmask, refer, order = condition_inputs([2, 0, 2], batch=3)
    with torch.no_grad():
        out = model.encode(text, tmask, lyrics, lmask, refer, order)
        solo = model.encode(text[1:2], tmask[1:2], lyrics[1:2], lmask[1:2], refer[:0], order[:0])
    assert out.timbre_mask.tolist() == [[True, False], [False, False], [True, True]]
    assert torch.equal(out.timbre_embs[1], torch.zeros(2, 24))
    # item 1 has no clip: its valid rows are lyrics then text, as in a run with no clip at all
    valid = int(out.encoder_attention_mask[1].sum())
    assert valid == int(solo.encoder_attention_mask.sum()) == 9 + 7
    assert torch.allclose(out.encoder_hidden_states[1, :valid], solo.encoder_hidden_states[0, :valid], atol=1e-5)


def test_lyric_padding_masks_keys_only():
    model = encoder()
    text, tmask, lyrics, lmask, refer, order = condition_inputs([0, 1])
    changed = lyrics.clone()
    changed[0, lmask[0] == 0] += 5.0  # padded lyric embeddings of item 0
    with torch.no_grad():
        a = model.encode(text, tmask, lyrics, lmask, refer, order).lyric_hidden_states
        b = model.encode(text, tmask, changed, lmask, refer, order).lyric_hidden_states
    valid = lmask[0].bool()
    assert torch.allclose(a[0, valid], b[0, valid], atol=1e-6)  # valid rows never see padded keys
    assert not torch.allclose(a[0, ~valid], b[0, ~valid])  # padded rows are computed and kept
    assert torch.isfinite(a).all()  # queries whose window holds no valid key do not give NaN


def test_special_token_is_used_by_xl_only():
    for xl, used in [(False, False), (True, True)]:
        model = encoder(xl)
        args = condition_inputs([0, 1])
        with torch.no_grad():
            before = model(*args)[0]
            model.timbre_encoder.special_token.add_(1.0)
            after = model(*args)[0]
        assert torch.equal(before, after) != used


def test_condition_encoder_rejects_bad_refer_order():
    model = encoder()
    text, tmask, lyrics, lmask, refer, _ = condition_inputs([0, 1])
    with pytest.raises(InputError, match="refer_order"):
        model(text, tmask, lyrics, lmask, refer, torch.tensor([0, 2]))
    with pytest.raises(InputError, match="refer_order"):
        model(text, tmask, lyrics, lmask, refer, torch.tensor([0]))
    with pytest.raises(InputError, match="refer_packed"):
        model(text, tmask, lyrics, lmask, refer[..., :32], torch.tensor([0, 1]))


# --- FSQ -----------------------------------------------------------------------------------------

def identity_quantizer() -> FSQuantizer:
    q = FSQuantizer(6, [8, 8, 8, 5, 5, 5])
    with torch.no_grad():
        q.project_in.weight.copy_(torch.eye(6)), q.project_in.bias.zero_()
        q.project_out.weight.copy_(torch.eye(6)), q.project_out.bias.zero_()
    return q


def test_fsq_basis_and_digit_round_trip():
    q = identity_quantizer()
    assert q.basis == [1, 8, 64, 512, 2560, 12800] and q.codebook_size == 64000
    every = torch.arange(64000)
    digits = q.indices_to_digits(every)
    assert torch.equal(digits[63999], torch.tensor([7, 7, 7, 4, 4, 4]))
    assert torch.equal(q.digits_to_indices(digits), every)
    assert len({tuple(d) for d in digits.tolist()}) == 64000


def test_fsq_indices_codes_indices_round_trip():
    """Every index -> its code -> pre-image of the soft clamp -> forward gives the index back."""
    q = identity_quantizer()
    every = torch.arange(64000)[None, :, None]  # (1, 64000, 1)
    codes = q.output_from_indices(every)  # identity projection: the codes themselves
    levels = torch.tensor(q.levels)
    assert torch.allclose(codes.amin(1), -torch.ones(6)) and torch.allclose(codes.amax(1), torch.ones(6))
    c = 1 + 1 / (levels - 1)
    z = torch.atanh(codes.double() / c) * c  # tanh(z/c)*c == code
    quantized, indices = q(z.float())
    assert indices.dtype == torch.int64 and torch.equal(indices, every)
    assert torch.allclose(quantized, codes, atol=1e-6)


def test_fsq_quantization_is_symmetric():
    q = identity_quantizer()
    z = randn(1, 50, 6, seed=3) * 2
    a, _ = q(z)
    b, _ = q(-z)
    assert torch.allclose(a, -b, atol=1e-6)


@pytest.mark.parametrize("bad,shown", [(64000, "64000"), (-1, "-1")])
def test_fsq_rejects_indices_outside_the_codebook(bad, shown):
    q = identity_quantizer()
    with pytest.raises(InputError, match=rf"indices must be in 0\.\.63999; got {shown}"):
        q.output_from_indices(torch.tensor([[[0], [bad]]]))
    with pytest.raises(InputError, match="integer"):
        q.output_from_indices(torch.zeros(1, 2, 1))


# --- tokenizer / detokenizer --------------------------------------------------------------------

def tokenizer(seed=0, **over):
    return randomize(AudioTokenizer(AceStep15Config(**dict(TINY, **over))), seed)


@pytest.mark.parametrize("frames", [13, 15, 1])
def test_tokenize_pads_with_silence_and_pools_the_mask(frames):
    model = tokenizer()
    x, silence = randn(2, frames, 64, seed=1), randn(1, 9, 64, seed=2)
    mask = torch.ones(2, frames)
    mask[1, 5:] = 0
    with torch.no_grad():
        quantized, indices, pooled_mask = model.tokenize(x, silence, mask)
        pad = -frames % 5
        manual = torch.cat([x, silence[:, :pad].expand(2, pad, 64)], 1).reshape(2, -1, 5, 64)
        q2, i2 = model(manual)
    windows = (frames + 4) // 5
    assert quantized.shape == (2, windows, 24) and indices.shape == (2, windows, 1)
    assert torch.equal(quantized, q2) and torch.equal(indices, i2)
    assert pooled_mask[0].tolist() == [1.0] * windows
    assert pooled_mask[1].tolist() == [1.0] * min(windows, 1) + [0.0] * (windows - 1)
    assert ((indices >= 0) & (indices < 64000)).all()
    assert torch.allclose(model.codes_to_quantized(indices), quantized, atol=1e-6)
    assert torch.allclose(model.codes_to_quantized(indices[..., 0]), quantized, atol=1e-6)


def test_tokenize_windows_are_independent():
    model = tokenizer()
    x, silence = randn(1, 20, 64, seed=1), randn(1, 5, 64)
    changed = x.clone()
    changed[:, 10:15] += 3.0
    with torch.no_grad():
        a = model.tokenize(x, silence)[0]
        b = model.tokenize(changed, silence)[0]
    same = torch.isclose(a, b).all(-1)[0].tolist()
    assert same == [True, True, False, True]


def test_tokenize_rejects_short_silence_and_bad_shapes():
    model = tokenizer()
    with pytest.raises(InputError, match="silence_latent"):
        model.tokenize(randn(1, 13, 64), randn(1, 1, 64))
    with pytest.raises(InputError, match="x must be"):
        model.tokenize(randn(1, 13, 32), randn(1, 5, 64))
    with pytest.raises(InputError, match="attention_mask"):
        model.tokenize(randn(1, 13, 64), randn(1, 5, 64), torch.ones(1, 12))


def test_detokenizer_expands_each_code_to_five_frames_independently():
    model = randomize(AudioDetokenizer(AceStep15Config(**TINY)))
    q = randn(2, 4, 24)
    changed = q.clone()
    changed[:, 2] += 1.0
    with torch.no_grad():
        a, b = model(q), model(changed)
    assert a.shape == (2, 20, 64)
    same = torch.isclose(a, b).all(-1).reshape(2, 4, 5).all(-1)
    assert same.tolist() == [[True, True, False, True]] * 2


def test_bf16_tokenizer_quantizes_in_float32():
    model = tokenizer().to(torch.bfloat16)
    x, silence = randn(1, 12, 64).bfloat16(), randn(1, 5, 64).bfloat16()
    with torch.no_grad():
        quantized, indices, mask = model.tokenize(x, silence)
    assert quantized.dtype == torch.bfloat16 and mask.dtype == torch.bfloat16
    assert ((indices >= 0) & (indices < 64000)).all()


# --- published layouts ---------------------------------------------------------------------------

def _manifest_part(name: str, prefix: str) -> dict:
    tensors = json.loads((MANIFESTS / name).read_text())["tensors"]
    return {k[len(prefix):]: v["shape"] for k, v in tensors.items() if k.startswith(prefix)}


@pytest.mark.skipif(not MANIFESTS.is_dir(), reason="reference manifests not available")
@pytest.mark.parametrize("name,config", [
    ("v15__acestep-v15-turbo__model.safetensors.json", AceStep15Config()),
    ("v15__acestep-v15-xl-turbo__model.safetensors.json", xl_config()),
])
@pytest.mark.parametrize("prefix,cls", [
    ("encoder.", AceStep15ConditionEncoder), ("tokenizer.", AudioTokenizer), ("detokenizer.", AudioDetokenizer),
])
def test_full_size_layout_matches_published_keys(name, config, prefix, cls):
    model = cls(config, dtype=torch.bfloat16, device="meta")
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert ours == _manifest_part(name, prefix)
