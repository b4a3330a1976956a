"""Regenerate the claims section of benchmarks/RESULTS.md from the recorded evidence in evidence/.

The section lies between `<!-- claims:begin -->` and `<!-- claims:end -->`; only that part of the
file is rewritten (atomically), the rest is left as it is. One row per registered claim: its
recorded full verdict, the metric's mean [95% interval], target, seeds, minutes, machine, commit
and date, or "no full evidence yet".

    python benchmarks/claims_results.py            # rewrite the section in benchmarks/RESULTS.md
    python benchmarks/claims_results.py --check    # exit 1 if the section is out of date
    python benchmarks/claims_results.py --print    # print the section, change nothing
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))  # this checkout's code, and so its evidence/ folder

from imo.claims import load_all, registry  # noqa: E402
from imo.claims.report_markdown import claims_markdown, rewrite_section, splice  # noqa: E402
from imo.errors import ImoError  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "RESULTS.md",
                    help="the Markdown file holding the markers (default: benchmarks/RESULTS.md)")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="change nothing; exit 1 if the section is out of date")
    mode.add_argument("--print", dest="show", action="store_true", help="print the section; change nothing")
    args = ap.parse_args(argv)
    try:
        load_all()
        block = claims_markdown([registry.CLAIMS.get(i) for i in registry.CLAIMS])
        if args.show:
            print(block)
            return 0
        if args.check:
            if not args.results.is_file():
                raise ImoError(f"{args.results} does not exist")
            text = args.results.read_text(encoding="utf-8")
            if splice(text, block, str(args.results)) != text:
                print(f"{args.results}: the claims section is out of date; run benchmarks/claims_results.py",
                      file=sys.stderr)
                return 1
            print(f"{args.results}: the claims section is up to date")
            return 0
        changed = rewrite_section(args.results, block)
        print(f"{args.results}: {'claims section rewritten' if changed else 'already up to date'}")
        return 0
    except ImoError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
