"""Optional mirrors of a run's metrics for the usual viewers; the SQLite store stays the source
of truth (a mirror only receives what is logged there).

    tb = TensorBoard(Path("tb")); tb.open(run_id); tb.log(step, metrics); tb.close()
"""

from pathlib import Path

from imo.errors import ConfigError


class TensorBoard:
    """Event files under folder/<run id> through torch.utils.tensorboard. Checked when made
    (package installed, folder possible), so a bad --tensorboard refuses before a run exists."""

    def __init__(self, folder: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError("--tensorboard needs the tensorboard package: pip install 'imo[tensorboard]'") from None
        self._writer_class = SummaryWriter
        self.folder = Path(folder).expanduser()
        if self.folder.exists() and not self.folder.is_dir():
            raise ConfigError(f"--tensorboard {self.folder} is a file; give a folder")
        if not self.folder.absolute().parent.is_dir():
            raise ConfigError(f"--tensorboard: the folder {self.folder.absolute().parent} does not exist")
        self.writer = None

    def open(self, run_id: str) -> None:
        self.writer = self._writer_class(log_dir=str(self.folder / run_id))

    def log(self, step: int, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
