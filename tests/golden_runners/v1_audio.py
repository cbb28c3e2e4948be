"""Golden runners for the v1 audio path: ``v1.mel``, ``v1.vocoder``, ``v1.vae.encode_audio``,
``v1.vae.decode_audio``. Every size and constant comes from the fixture (config, args, tensors)."""

from __future__ import annotations

import torch

from ace_core.audio.mel import MelConfig, log_mel, normalize_mel
from ace_core.v1.music_vae import MusicVAE
from ace_core.v1.vocoder import ADaMoSHiFiGAN, VocoderConfig


@torch.no_grad()
def run_mel(fx) -> None:
    c, a = fx.config, fx.args
    cfg = MelConfig(
        sample_rate=int(c["sample_rate"]),
        n_fft=int(c["n_fft"]),
        win_length=int(c["win_length"]),
        hop_length=int(c["hop_length"]),
        n_mels=int(c["n_mels"]),
        f_min=float(c["f_min"]),
        f_max=float(c["f_max"]),
    )
    assert c.get("center", False) is False and c.get("mel_scale", "slaney") == "slaney"
    assert c.get("mel_norm", "slaney") == "slaney"
    wave = fx.inputs["waveform"]  # (B, 2, L)
    multiple = int(a.get("pad_to_multiple", 1))
    pad = -wave.shape[-1] % multiple
    if pad:
        wave = torch.nn.functional.pad(wave, (0, pad))
    lm = log_mel(wave, cfg)  # (B, 2, n_mels, L_pad / hop)
    fx.check("log_mel", lm)
    fx.check("mel", normalize_mel(lm, float(c["min_mel_value"]), float(c["max_mel_value"])))


@torch.no_grad()
def run_vocoder(fx) -> None:
    model = ADaMoSHiFiGAN(VocoderConfig.from_reference(fx.config), dtype=fx.dtype)
    model.load_state_dict(fx.state_dict, strict=True)
    fx.check("waveform", model.decode(fx.inputs["mel"]).float())


def _vae(fx) -> MusicVAE:
    vae = MusicVAE.from_reference(fx.config, dtype=fx.dtype)
    assert float(fx.args["scale_factor"]) == vae.LATENT_SCALE
    assert float(fx.args["shift_factor"]) == vae.LATENT_SHIFT
    vae.load_state_dict(fx.state_dict, strict=True)
    return vae


@torch.no_grad()
def run_encode_audio(fx) -> None:
    vae = _vae(fx)
    wave = fx.inputs["waveform"]
    sr = fx.args.get("sr")
    if sr is None:
        # Reference quirk: with sr=None it resamples from its constructor's source_sample_rate
        # (48000 when that is None) but computes latent_lengths with sr = 48000.
        source = fx.config.get("source_sample_rate")
        wave_sr, length_sr = (48000 if source is None else int(source)), 48000
    else:
        wave_sr = length_sr = int(sr)
    fx.check("latent", vae.encode(wave, wave_sr))
    if "latent_lengths" in fx.outputs:
        lengths = torch.full((wave.shape[0],), wave.shape[-1], dtype=torch.int64)
        fx.check("latent_lengths", vae.latent_lengths(lengths, length_sr))


@torch.no_grad()
def run_decode_audio(fx) -> None:
    vae = _vae(fx)
    sr = fx.args.get("sr")
    wave = vae.decode(fx.inputs["latent"], sample_rate=None if sr is None else int(sr))
    lengths = fx.args.get("audio_lengths")
    if lengths is not None:  # the reference trims each item to its length
        wave = torch.stack([w[:, : int(n)] for w, n in zip(wave, lengths)])
    fx.check("waveform", wave)


RUNNERS = {
    "v1.mel": run_mel,
    "v1.vocoder": run_vocoder,
    "v1.vae.encode_audio": run_encode_audio,
    "v1.vae.decode_audio": run_decode_audio,
}
