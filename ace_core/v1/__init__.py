"""ACE-Step v1 (3.5B): DiT, UMT5 text encoder, music DCAE + vocoder, tokenizers, samplers."""
