"""Side-by-side benchmark of AceForge against ComfyUI core (driver: ``bench/bench_side_by_side.py``).

Modules: ``protocol`` (JSON lines between the driver and its workers, process measurements; stdlib
only, so both Python environments can import it), ``channel`` (the driver's end of a worker), ``worker_base`` (the phase loop every worker
shares), ``ours_v1`` / ``core_v1``, ``ours_v15`` / ``core_v15`` (one worker per side and family), ``families``
(what the driver does per family), ``load_child`` (a checkpoint
load in a fresh process), ``inputs`` / ``inputs_v15`` (the seeded inputs both sides read), ``report`` (statistics and
the printed table).
"""
