"""`imo prune`, `imo quantize` and `imo inspect-outliers` score on the run's own training corpus; an
imported run has none, so they refuse it in one line (exit 2) and leave the store as it was."""

import pytest
from tiny_gguf import write_tiny_gguf

from imo.cli import main
from imo.importers.gguf import import_gguf
from imo.runs.store import RunStore

pytest.importorskip("gguf")


@pytest.mark.parametrize("command", [["quantize", "--bits", "8"], ["prune", "--sparsity", "0.5"],
                                     ["inspect-outliers"]])
def test_shrinking_an_imported_run_is_refused_in_one_line(tmp_path, capsys, command):
    run = import_gguf(write_tiny_gguf(tmp_path / "tiny.gguf"), name="t")
    before = len(RunStore.open().list())
    with pytest.raises(SystemExit) as e:
        main([command[0], run, *command[1:]])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2
    assert "no training corpus" in err[0] and "--weights int8|int4" in err[0]
    assert "Traceback" not in "\n".join(err)
    assert len(RunStore.open().list()) == before
