"""Exams: reusable measurements of trained runs and backends that claims build on.

  * `extrapolation` bits/byte of a run at multiples of its training context (Press et al. 2022);
  * `interpolation` RoPE fine-tuned at a longer context, positions scaled vs extrapolated
                    (Chen et al. 2023);
  * `memory`        peak memory of one attention forward + backward, in a fresh process;
  * `trick`         trickability: FGSM/PGD on digits/MNIST classifiers (Goodfellow et al. 2014),
                    adversarial training, minimal byte edits that flip a char model's answer;
  * `negatives`     true positives vs true negatives on a generated fact base;
  * `skills`        train on skills of the battery (imo.tasks.skills), test on each;
  * `recall`        exact recall of training text (the lossy memory of a model) beside bits/byte,
                    weight bytes and xz/bzip2 given the training text.

    curve = extrapolation_curve(run_id, store)   # {1: 2.31, 2: 2.30, 4: ..., 16: ...}
    frac = exact_recall(model, train_bytes, prefix=32, k=32)   # imo.exams.recall
"""
