"""Audio DSP helpers (resampling, mel) with no torchaudio dependency."""
