"""Run the benchmarks: ``python -m bench [SUITE ...] [--rows N]`` (``make bench``).

Each suite measures dlqctl next to a raw baseline in the same run, prints Markdown tables
and writes them to bench/results/SUITE.md; ``--update-docs`` copies them into
docs/performance.md between the ``<!-- bench:SUITE -->`` markers.
"""

from __future__ import annotations

import argparse
import compileall
import importlib
import re
import sys

from bench.common import RESULTS, ROOT, write_results

# suite name -> module with run(args) -> (tables, meta)
SUITES: dict[str, str] = {
    "consumer": "bench.consumer",
    "inspect": "bench.inspect",
    "purge": "bench.purge",
    "replay": "bench.replay",
}


def update_docs(suites: list[str]) -> None:
    page = ROOT / "docs" / "performance.md"
    text = page.read_text()
    for suite in suites:
        block = (RESULTS / f"{suite}.md").read_text()
        pattern = re.compile(rf"(<!-- bench:{suite} -->\n).*?(<!-- /bench:{suite} -->)", re.DOTALL)
        if not pattern.search(text):
            print(f"{page.name} has no <!-- bench:{suite} --> markers; skipped", file=sys.stderr)
            continue
        text = pattern.sub(lambda m, b=block: m.group(1) + b + m.group(2), text)
    page.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "suites", nargs="*", help=f"suites to run (default: all of {', '.join(SUITES)})"
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes, for checking the benchmark code"
    )
    parser.add_argument(
        "--update-docs", action="store_true", help="copy the results into docs/performance.md"
    )
    args = parser.parse_args()
    # dlqctl runs from its source tree (an editable install): compile its bytecode once, as
    # installing a wheel does, or every measured process would compile it again (always
    # with PYTHONDONTWRITEBYTECODE set), which the bare-script baselines never pay.
    compileall.compile_dir(str(ROOT / "dlqctl"), quiet=1)
    chosen = args.suites or list(SUITES)
    unknown = sorted(set(chosen) - set(SUITES))
    if unknown:
        parser.error(f"unknown suite(s) {', '.join(unknown)}; known: {', '.join(SUITES)}")
    for suite in chosen:
        module = importlib.import_module(SUITES[suite])
        print(f"== {suite}", flush=True)
        tables, meta = module.run(quick=args.quick)
        path = write_results(suite, tables, meta)
        for table in tables:
            print(table.markdown())
        print(f"(written to {path.relative_to(ROOT)})")
    if args.update_docs:
        update_docs(chosen)


if __name__ == "__main__":
    main()
