"""ACE-Step 1.5: DiT (2B/XL), condition encoder, FSQ tokenizer, Oobleck VAE, Qwen3 text encoder, prompts, samplers."""
