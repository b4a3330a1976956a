"""Exams: reusable measurements of trained runs and backends that claims build on.

  * `extrapolation` bits/byte of a run at multiples of its training context (Press et al. 2022);
  * `interpolation` RoPE fine-tuned at a longer context, positions scaled vs extrapolated
                    (Chen et al. 2023);
  * `memory`        peak memory of one attention forward + backward, in a fresh process.

    curve = extrapolation_curve(run_id, store)   # {1: 2.31, 2: 2.30, 4: ..., 16: ...}
"""
