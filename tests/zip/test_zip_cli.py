"""`imo zip` / `imo unzip` from the command line: files, stdin/stdout, overwrite rules, errors."""

import pytest
from typer.testing import CliRunner

from imo.cli import _mount, app, main

TEXT = b"It was the best of times, it was the worst of times, it was the age of wisdom. " * 20
ARGS = ["--level", "1", "--predictor", "stats", "--streams", "8", "-q"]


def run_main(argv, capsys):
    """imo.cli.main as the shell runs it: (exit code, stderr)."""
    try:
        main(argv)
        code = 0
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


def test_file_round_trip_and_overwrite_rules(tmp_path, capsys):
    src = tmp_path / "a.txt"
    src.write_bytes(TEXT)
    assert run_main(["zip", str(src), *ARGS], capsys)[0] == 0
    packed = tmp_path / "a.txt.imz"
    first = packed.read_bytes()
    code, err = run_main(["zip", str(src), *ARGS], capsys)
    assert code == 2 and "exists" in err and "--force" in err and err.count("\n") == 1
    assert packed.read_bytes() == first  # untouched
    assert run_main(["zip", str(src), *ARGS, "--force"], capsys)[0] == 0
    src.unlink()
    assert run_main(["unzip", str(packed), "-q"], capsys)[0] == 0
    assert src.read_bytes() == TEXT
    code, err = run_main(["unzip", str(packed), "-q"], capsys)
    assert code == 2 and "exists" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "a.txt.imz"]  # no temporaries left


def test_errors_are_one_line_with_exit_code_2(tmp_path, capsys):
    junk = tmp_path / "junk.imz"
    junk.write_bytes(b"IMOZ\x01\x00\x00")
    code, err = run_main(["unzip", str(junk), "-q"], capsys)
    assert code == 2 and err.startswith("imo: error: truncated") and "Traceback" not in err
    assert not (tmp_path / "junk").exists()  # nothing half-written
    code, err = run_main(["unzip", str(tmp_path / "nothing.imz")], capsys)
    assert code == 2 and "no such file" in err
    code, err = run_main(["zip", str(junk), "--level", "7"], capsys)
    assert code == 2 and "--level must be one of 1, 2, 3" in err
    code, err = run_main(["unzip", str(tmp_path / "plain.txt")], capsys)
    assert code == 2 and "-o OUT" in err


def test_stdin_to_stdout():
    _mount()
    runner = CliRunner()
    packed = runner.invoke(app, ["zip", "-", *ARGS], input=TEXT)
    assert packed.exit_code == 0, packed.output
    blob = packed.stdout_bytes
    assert blob.startswith(b"IMOZ") and len(blob) < len(TEXT) // 2
    back = runner.invoke(app, ["unzip", "-", "-q"], input=blob)
    assert back.exit_code == 0 and back.stdout_bytes == TEXT


@pytest.mark.parametrize("bad", [b"", b"IMOZ"])
def test_stdin_garbage_is_refused(bad):
    from imo.zip.container import ZipFormatError

    _mount()
    res = CliRunner().invoke(app, ["unzip", "-", "-q"], input=bad)
    assert isinstance(res.exception, ZipFormatError)
