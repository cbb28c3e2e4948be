"""What ComfyUI core's workers of every family share: releasing models, the model's inference
dtype, the KSampler call of ``generate`` and the VAE Encode/Decode phases (``vae.encode`` /
``vae.decode`` on (B, C, L) waveforms at the family's ``sample_rate``)."""

from __future__ import annotations

from .worker_base import PhaseWorker


class CoreWorker(PhaseWorker):
    side = "core"
    sample_rate: int = 0  # Hz of the family's VAE

    def release(self) -> None:
        import comfy.model_management as mm

        self.model = self.clip = self.vae = None
        mm.unload_all_models()
        mm.soft_empty_cache()

    def _inference_dtype(self):
        model = self.model.model
        get = getattr(model, "get_dtype_inference", None)
        return get() if get is not None else model.get_dtype()

    def _ksampler_run(self, positive, negative, steps: int, cfg: float, seed: int):
        """A ``run()`` of ``comfy.sample.sample`` (KSampler: euler, "simple") from the inputs' noise;
        the time of every step is recorded from its callback."""
        import comfy.sample
        import torch

        noise = self.inputs["noise"]

        def run():
            stamps, tick = self.step_clock()
            out = comfy.sample.sample(self.model, noise, steps, cfg, "euler", "simple", positive, negative,
                                      torch.zeros_like(noise), denoise=1.0, callback=tick, disable_pbar=True,
                                      seed=seed)
            return {"outputs": {"latent": out}, "step_stamps": stamps}

        return run

    def phase_vae_encode(self, dtype):
        wave = self.inputs["waveform"]  # (B, C, L) at sample_rate

        def run():
            latent = self.vae.encode(wave.movedim(1, -1))
            return {"outputs": {"latent": latent}, "audio_seconds": wave.shape[-1] / self.sample_rate}

        return run

    def phase_vae_decode(self, dtype):
        latent = self.inputs["latent"]

        def run():
            wave = self.vae.decode(latent).movedim(-1, 1)  # (B, C, L)
            return {"outputs": {"waveform": wave}, "audio_seconds": wave.shape[-1] / self.sample_rate}

        return run
