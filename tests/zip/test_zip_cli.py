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


def test_corrupt_file_from_the_issue_is_one_line_exit_2(tmp_path, capsys, shared_data):
    """Issue 12's reproduction: the first 2,000 bytes of lcet10.txt, default settings, byte 498
    flipped with 0xEC: an AssertionError traceback and exit 1 before."""
    src = tmp_path / "a.txt"
    src.write_bytes((shared_data / "lcet10.txt").read_bytes()[:2000])
    assert run_main(["zip", str(src), "-q"], capsys)[0] == 0
    packed = tmp_path / "a.txt.imz"
    bad = bytearray(packed.read_bytes())
    bad[498] ^= 0xEC
    packed.write_bytes(bytes(bad))
    src.unlink()
    code, err = run_main(["unzip", str(packed), "-q"], capsys)
    assert code == 2 and err.startswith("imo: error: ") and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt.imz"]  # nothing half-written


def test_directories_are_refused_before_any_work(tmp_path, capsys):
    src = tmp_path / "a.txt"
    src.write_bytes(TEXT)
    folder = tmp_path / "folder"
    folder.mkdir()
    code, err = run_main(["zip", str(folder), *ARGS], capsys)
    assert code == 2 and "is a directory" in err and "no such file" not in err
    for extra in ([], ["--force"]):
        code, err = run_main(["zip", str(src), "-o", str(folder), *ARGS, *extra], capsys)
        assert code == 2 and "is a directory" in err and err.count("\n") == 1, err
    assert list(folder.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "folder"]


def test_sigterm_during_zip_leaves_no_temporary(tmp_path):
    """SIGTERM unwinds like Ctrl-C: exit 143, no `.NAME.PID.HEX.tmp.imz`, no output."""
    import os
    import signal
    import subprocess
    import sys
    import time

    src = tmp_path / "big.txt"
    src.write_bytes(TEXT * 400)  # ~32 KB of the mix at level 1: tens of seconds, far longer than the wait
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-m", "imo", "zip", str(src), "--level", "1", "-q"],
                            env=env, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline and not any(p.name.endswith(".tmp.imz") for p in tmp_path.iterdir()):
        time.sleep(0.05)
    assert any(p.name.endswith(".tmp.imz") for p in tmp_path.iterdir()), "the temporary never appeared"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert b"Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.txt"]


def test_bench_rows_go_to_stdout_when_piped(tmp_path):
    """Piped, every row (baselines and imo's) is on stdout as tab-separated text; stderr is quiet."""
    import os
    import subprocess
    import sys

    src = tmp_path / "s.txt"
    src.write_bytes(TEXT[:400])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-m", "imo", "zip", "--bench", str(src), "--level", "1"],
                          env=env, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode().splitlines()
    assert lines[0].startswith("file\ttool\tbytes")
    tools = [line.split("\t")[1] for line in lines[1:]]
    assert {"gzip -9", "xz -9e", "imo stats", "imo net", "imo mix", "imo cm fast (level 1)",
            "imo cm full (level 2)", "imo cm max (level 3)"} <= set(tools)
    assert done.stderr == b""


def test_zip_and_unzip_start_without_torch(tmp_path):
    """`imo zip` / `imo unzip` with cm mount only themselves: start-up skips the other commands'
    imports (torch alone is seconds), and the round trip still works."""
    import os
    import subprocess
    import sys

    src = tmp_path / "s.txt"
    src.write_bytes(TEXT)
    code = ("import sys; from imo.cli import main\n"
            "for argv in (['zip', sys.argv[1], '-q'], ['unzip', sys.argv[1] + '.imz', '-o', sys.argv[1] + '.out', '-q']):\n"
            "    try:\n        main(argv)\n    except SystemExit as e:\n        assert not e.code, e.code\n"
            "print('torch' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", code, str(src)], env=env, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [b"False"]
    assert (tmp_path / "s.txt.out").read_bytes() == TEXT
