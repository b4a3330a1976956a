"""Training progress: a rich progress bar on a terminal (step, bits/byte, tokens/s, ETA); one
line per evaluation (training) or every `every` batches (evaluation) when output is redirected;
nothing with --quiet.

    progress = Progress(total=200, label="train"); progress.update(step, loss, val, tokens)
"""

import time

from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress

from imo.console import is_tty


class Progress:
    def __init__(self, total: int | None, enabled: bool = True, label: str = "train", every: int | None = None) -> None:
        self.total = total
        self.enabled = enabled
        self.label = label
        self.every = every  # redirected output: a line every N updates (None: at evaluations only)
        self.bar = None
        self.t0 = time.perf_counter()
        self.tokens = 0
        self.last_val: float | None = None
        if enabled and is_tty():
            self.bar = RichProgress(
                TextColumn(label), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"), TimeRemainingColumn(),
            )
            self.task = self.bar.add_task(label, total=total, info="")
            self.bar.start()

    def update(self, step: int, train_bpb: float, val_bpb: float | None, tokens: int) -> None:
        if not self.enabled:
            return
        self.tokens += tokens
        rate = self.tokens / max(time.perf_counter() - self.t0, 1e-9)
        if val_bpb is not None:
            self.last_val = val_bpb
        val = f" val {self.last_val:.3f}" if self.last_val is not None else ""
        info = f"loss {train_bpb:.3f}{val} bits/byte  {rate:,.0f} tok/s"
        if self.bar is not None:
            self.bar.update(self.task, completed=step, total=self.total, info=info)
        elif val_bpb is not None or (self.every and (step % self.every == 0 or step == self.total)):
            print(f"{self.label} {step}/{self.total or '?'}  {info}", flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
