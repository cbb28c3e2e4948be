"""Family-neutral editing: time ranges to frames, long-source windows and plans, seams, and the
RePaint-style masked loop. Each takes the family's :class:`~ace_core.latent_spec.LatentSpec`."""
