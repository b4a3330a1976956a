"""`imo zip` and `imo unzip` (see docs/zip.md)."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, BinaryIO

import typer

from imo.errors import ConfigError, DataError

Opt = typer.Option
SUFFIX = ".imz"


def _output_for(inp: str, out: str | None, unzip: bool) -> str:
    if out is not None:
        return out
    if inp == "-":
        return "-"
    if not unzip:
        return inp + SUFFIX
    if inp.endswith(SUFFIX) and len(inp) > len(SUFFIX):
        return inp[: -len(SUFFIX)]
    raise ConfigError(f"{inp} does not end in {SUFFIX}; name the output with -o OUT (or -o - for stdout)")


@contextmanager
def _open_in(path: str) -> Iterator[BinaryIO]:
    if path == "-":
        yield sys.stdin.buffer
        return
    p = Path(path)
    if p.is_dir():
        raise DataError(f"{path} is a directory; name a file (or - for stdin)")
    if not p.is_file():
        raise DataError(f"no such file: {path}")
    with open(p, "rb") as f:
        yield f


@contextmanager
def _open_out(path: str, force: bool, inp: str) -> Iterator[BinaryIO]:
    """stdout, or a temporary file beside the target that is renamed onto it only when the work
    succeeded (an error or Ctrl-C leaves no partial output)."""
    if path == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    from imo.atomic import atomic_path

    target = Path(path)
    if target.is_dir():  # refused before any work, --force or not
        raise ConfigError(f"output {path} is a directory; name a file (or - for stdout)")
    if inp != "-" and target.exists() and target.resolve() == Path(inp).resolve():
        raise ConfigError(f"output {path} is the input file")
    if target.exists() and not force:
        raise ConfigError(f"{path} exists; pass --force to overwrite it")
    if not target.parent.is_dir():
        raise DataError(f"no such folder: {target.parent}")
    with atomic_path(target) as tmp, open(tmp, "wb") as f:
        yield f


@contextmanager
def _terminable() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C (exit 143), so the temporary output is removed on the way out;
    Python's default for SIGTERM would kill the process before any cleanup."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame) -> None:
        print("imo: terminated", file=sys.stderr)
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _progress(quiet: bool, label: str, total: int | None) -> Iterator[Callable[[int], None] | None]:
    """A progress bar on stderr (stdout may carry the data), only on a terminal."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    with Progress(label, BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


def zip_command(
    files: Annotated[list[str], typer.Argument(help="File to compress (- for stdin); with --bench, files to measure.")],
    output: Annotated[str | None, Opt("-o", "--output", help="Output file (- for stdout). [default: FILE.imz]")] = None,
    mode: Annotated[str, Opt(help="online: the model learns while coding (nothing stored but a header); pretrained: a trained run (--model) predicts alone, through the engine's KV cache (not portable across machines).")] = "online",
    model: Annotated[str | None, Opt("--model", help="Pretrained mode: run id, unique prefix or name of a trained imo run.")] = None,
    level: Annotated[int, Opt(help="cm: 1 fast (fewer contexts, one mixer), 2 the full model, 3 max (a second mixing layer, larger tables; slowest). Float predictors: table sizes, orders, network width.")] = 2,
    predictor: Annotated[str, Opt(help="mix (statistics + network), stats (network off), net (network alone) or cm (default: integer context mixing, compiled: the fastest and smallest, and decodes the same on every machine).")] = "cm",
    streams: Annotated[int | None, Opt(help="Parallel segments coded in one batch per block. [default: 64; pretrained mode 16]")] = None,
    window: Annotated[int, Opt(help="Pretrained mode: tokens of context at most (then the KV cache restarts from the last quarter).")] = 768,
    force: Annotated[bool, Opt("--force", "-f", help="Overwrite an existing output.")] = False,
    bench: Annotated[bool, Opt("--bench", help="Measure imo's predictors (cm at levels 1-3, the float ones at --level) beside gzip, bzip2, xz, zstd, brotli, PPMd, zpaq and 7-Zip PPMd (the last two where installed).")] = False,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Compress a file losslessly: a model predicts each next byte (by default cm, integer context mixing, learning as it goes) and an arithmetic coder turns the predictions into bits."""
    from imo.zip.settings import ZipSettings

    if mode not in ("online", "pretrained"):
        raise ConfigError(f"--mode must be online or pretrained, got {mode!r}")
    if (mode == "pretrained") != (model is not None):
        raise ConfigError("--mode pretrained needs --model RUN, and --model needs --mode pretrained")
    info = lm_settings = None
    if model is not None:  # the run alone predicts, through the engine's KV cache (imo.zip.lm)
        if (level, predictor) != (2, "cm"):
            raise ConfigError("--level and --predictor do not apply to --mode pretrained (the run alone predicts)")
        from imo.zip.lm import LMSettings, model_info

        lm_settings = LMSettings(streams=16 if streams is None else streams, window=window).check()
        info = model_info(model)
    if bench:
        _bench(files, level, quiet, info, lm_settings)
        return
    if len(files) != 1:
        raise ConfigError(f"imo zip takes one FILE (got {len(files)}); --bench takes several")
    settings = None if info else ZipSettings.build(level=level, predictor=predictor, streams=streams or 64)
    from imo.zip.codec import compress_stream
    from imo.zip.lm import compress_lm

    inp = files[0]
    out = _output_for(inp, output, unzip=False)
    total = Path(inp).stat().st_size if inp != "-" and Path(inp).is_file() else None
    with _terminable(), _open_in(inp) as src, _open_out(out, force, inp) as dst, \
            _progress(quiet, "zip", total) as prog:
        if info is None:
            st = compress_stream(src, dst, settings, prog)
        else:
            st = compress_lm(src, dst, info, lm_settings, prog)
    if not quiet:
        with_model = ""
        if info is not None:
            total = st.compressed + info["model_bytes"]
            with_model = (f" ({total:,} bytes, {8 * total / max(st.original, 1):.3f} bits/byte with the model's "
                          f"{info['model_bytes']:,}; {st.tokens:,} tokens)")
        print(f"{inp} -> {out}: {st.original:,} -> {st.compressed:,} bytes, {st.bits_per_byte:.3f} bits/byte{with_model}, "
              f"{st.original / max(st.seconds, 1e-9) / 1e3:,.1f} KB/s", file=sys.stderr)


def unzip_command(
    file: Annotated[str, typer.Argument(help="An .imz file (- for stdin).")],
    output: Annotated[str | None, Opt("-o", "--output", help="Output file (- for stdout). [default: FILE without .imz]")] = None,
    force: Annotated[bool, Opt("--force", "-f", help="Overwrite an existing output.")] = False,
    model: Annotated[str | None, Opt("--model", help="Pretrained mode: decode with this run (default: the run the header names); its weights must be the encoder's.")] = None,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Decompress an .imz file; verifies the length and the SHA-256 checksum of the original."""
    from imo.zip import container as C
    from imo.zip.codec import decompress_stream
    from imo.zip.lm import MODE, decompress_lm

    out = _output_for(file, output, unzip=True)
    with _terminable(), _open_in(file) as raw, _open_out(out, force, file) as dst, \
            _progress(quiet, "unzip", None) as prog:
        src = _Replay(raw)
        header = C.read_header(src)
        if header.get("mode") == MODE:
            st = decompress_lm(raw, dst, header, prog, run=model)
        elif model is not None:
            raise ConfigError("--model is for pretrained-mode files; this file's model is built in")
        else:
            st = decompress_stream(src.replay(), dst, prog)
    if not quiet:
        print(f"{file} -> {out}: {st.original:,} bytes, checksum ok, "
              f"{st.original / max(st.seconds, 1e-9) / 1e3:,.1f} KB/s", file=sys.stderr)


class _Replay:
    """A reader that remembers what was read, so the header can be read again by the decoder."""

    def __init__(self, f: BinaryIO) -> None:
        self.f, self.seen, self.at = f, bytearray(), None

    def read(self, n: int = -1) -> bytes:
        if self.at is not None and self.at < len(self.seen):
            part = bytes(self.seen[self.at : self.at + n])
            self.at += len(part)
            return part
        b = self.f.read(n)
        if self.at is None:
            self.seen += b
        return b

    def replay(self) -> _Replay:
        self.at = 0
        return self


def _bench(files: list[str], level: int, quiet: bool, model: dict | None, lm_settings=None) -> None:
    """On a terminal: progress lines on stderr, then the table. Piped: each row goes to stdout as
    tab-separated text as soon as it is measured (a header line first), nothing on stderr."""
    from imo.console import is_tty, print_table
    from imo.zip.bench import COLUMNS, bench_files

    paths = [Path(f) for f in files]
    for p in paths:
        if p.is_dir():
            raise DataError(f"{p} is a directory; name files")
        if not p.is_file():
            raise DataError(f"no such file: {p}")
    if not is_tty():
        print("\t".join(COLUMNS), flush=True)
        bench_files(paths, level=level, log=lambda line: print(line, flush=True), model=model, lm_settings=lm_settings)
        return
    log = None if quiet else (lambda line: print(line, file=sys.stderr))
    rows = bench_files(paths, level=level, log=log, model=model, lm_settings=lm_settings)
    print_table(COLUMNS, [r.cells() for r in rows], title="imo zip --bench")


def register(app: typer.Typer) -> None:
    app.command("zip")(zip_command)
    app.command("unzip")(unzip_command)
