"""The claims section of benchmarks/RESULTS.md, generated from evidence/: a row per claim from
its record, "no full evidence yet" without one, stale records marked, and only the text between
the markers rewritten (atomically), by benchmarks/claims_results.py and `imo report --markdown`."""

import importlib.util
import os
from pathlib import Path

import pytest
import typer
from claim_fakes import fake_claim
from typer.testing import CliRunner

from imo.claims.cli import report_command
from imo.claims.evidence import write_record
from imo.claims.report_markdown import BEGIN, END, claims_markdown, rewrite_section, splice
from imo.claims.runner import run_claim
from imo.errors import ImoError
from imo.runs.store import RunStore

ROOT = Path(__file__).resolve().parents[2]
HEAD = "# Results\n\nprose before\n\n"
TAIL = "\n\n## History\n\nold prose | with a pipe\n"


def load_script():
    spec = importlib.util.spec_from_file_location("claims_results", ROOT / "benchmarks" / "claims_results.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def recorded(fake_registry):
    """Three claims: one recorded, one recorded at an older version (stale), one never recorded."""
    wide = fake_registry(fake_claim("wide-wins", [0.3, 0.35, 0.4], threshold=0.1))
    old = fake_claim("changed", [-0.5, -0.4, -0.6], op="<", threshold=0.0)
    fake_registry(fake_claim("changed", [-0.5, -0.4, -0.6], op="<", threshold=0.0, version=2))
    fake_registry(fake_claim("never-recorded", [1.0]))
    with RunStore.open() as store:
        # as if measured on a dirty and on a clean tree (this one may be either)
        dirty, clean = run_claim(wide, "full", store), run_claim(old, "full", store)
        dirty["provenance"]["src_dirty"], clean["provenance"]["src_dirty"] = True, False
        write_record(dirty, allow_dirty=True)
        write_record(clean)
    return [wide]


def rows(block: str) -> dict[str, list[str]]:
    out = {}
    for line in block.splitlines():
        if line.startswith("| ") and not line.startswith("| claim |"):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            out[cells[0]] = cells
    return out


def test_the_table_comes_from_the_records(recorded):
    from imo.claims import registry

    block = claims_markdown([registry.CLAIMS.get(i) for i in registry.CLAIMS])
    assert "| claim | verdict | metric: mean [95% interval] | target (threshold + effect) | seeds |" in block
    assert "2 of 3 registered claims have recorded evidence (1 stale)." in block
    r = rows(block)
    assert list(r) == ["wide-wins", "changed", "never-recorded"]
    wide = r["wide-wins"]
    assert wide[1] == "**supported**" and wide[2].startswith("gap 0.35 [")
    assert wide[3] == "> 0.1 (0.1 + 0)" and wide[4] == "3"
    assert wide[7].endswith("(dirty, --allow-dirty)") and wide[8][:2] == "20" and "cores" in wide[6]
    assert r["changed"][1] == "**supported (stale: its code changed since)**"
    assert r["changed"][3] == "< 0 (0 - 0)" and "dirty" not in r["changed"][7]
    assert r["never-recorded"][1:] == ["no full evidence yet"] + ["-"] * 7


def test_splice_replaces_only_between_the_markers():
    text = f"{HEAD}{BEGIN}\nold table\n{END}{TAIL}"
    new = splice(text, "new table\n")
    assert new == f"{HEAD}{BEGIN}\nnew table\n{END}{TAIL}"
    assert splice(new, "new table") == new  # idempotent
    for bad, why in [(HEAD + TAIL, "found 0 and 0"), (f"{BEGIN}{BEGIN}{END}", "found 2 and 1"),
                     (f"{END}\n{BEGIN}", "comes before")]:  # fmt: skip
        with pytest.raises(ImoError, match=why):
            splice(bad, "x")


def test_the_script_rewrites_the_section_and_checks_it(recorded, tmp_path, capsys):
    script = load_script()
    results = tmp_path / "RESULTS.md"
    results.write_text(f"{HEAD}{BEGIN}\n{END}{TAIL}", encoding="utf-8")
    assert script.main(["--check", "--results", str(results)]) == 1  # the section is empty: out of date
    assert script.main(["--results", str(results)]) == 0
    text = results.read_text(encoding="utf-8")
    assert text.startswith(HEAD + BEGIN + "\n## Claims: recorded full verdicts") and text.endswith(END + TAIL)
    assert "| wide-wins | **supported** |" in text
    assert sorted(os.listdir(tmp_path)) == ["RESULTS.md", "evidence"]  # no temporary file left
    assert script.main(["--check", "--results", str(results)]) == 0
    assert not rewrite_section(results, text.split(BEGIN + "\n")[1].split(END)[0])  # unchanged: not written
    capsys.readouterr()
    assert script.main(["--print"]) == 0 and "| changed |" in capsys.readouterr().out

    # a new record makes the section out of date until the script runs again
    from imo.claims import registry

    with RunStore.open() as store:
        write_record(run_claim(registry.CLAIMS.get("never-recorded"), "full", store), allow_dirty=True)
    assert script.main(["--check", "--results", str(results)]) == 1
    assert script.main(["--results", str(results)]) == 0
    assert "| never-recorded | **supported** |" in results.read_text(encoding="utf-8")

    # a file without the markers: a one-line error, exit 2, the file untouched
    results.write_text(HEAD + TAIL, encoding="utf-8")
    capsys.readouterr()
    assert script.main(["--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and BEGIN in err
    assert results.read_text(encoding="utf-8") == HEAD + TAIL
    assert script.main(["--results", str(tmp_path / "missing.md")]) == 2


def test_report_markdown_command(recorded, tmp_path):
    app = typer.Typer()
    app.command("report")(report_command)
    app.command("unused")(lambda: None)  # two commands, so "report" is a sub-command
    res = CliRunner().invoke(app, ["report", "--markdown"])
    assert res.exit_code == 0, res.output
    assert "| wide-wins | **supported** |" in res.stdout and "<html" not in res.stdout
    out = tmp_path / "claims.md"
    res = CliRunner().invoke(app, ["report", "--markdown", "-o", str(out)])
    assert res.exit_code == 0 and "| changed |" in out.read_text(encoding="utf-8")
    res = CliRunner().invoke(app, ["report", "--markdown", "-o", str(out)])
    assert isinstance(res.exception, ImoError) and "--force" in str(res.exception)
