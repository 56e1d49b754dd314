"""Release review of a stack.

    python -m report --stack prod [--out reports/prod] [--ra-text <RA text file>] [--evidence-index <file>]

Writes review.md, review.json and the site picture (site.svg, site.png) to --out (default reports/<stack>/).
The RA text is required: the review carries the RA traceability matrix, so without it the command refuses (exit 2)
rather than write a review that silently lacks it (default path: ../shared/reference, or $NCP_RA_TEXT).
Exit codes: 0 written; 1 a reference in the code points at text the RA does not contain (review still written);
2 bad input (stack config, pack config, RA text missing); 3 an internal error (Graphviz missing is reported as such).
"""
import argparse
import json
import sys
from pathlib import Path

import graphviz
import pulumi

from cli_exit import prepare_output, run_command
from evidence.record import INDEX_FILE
from offline.policy_check import PackConfigError
from offline.recorder import run_stack_file
from plan.catalog import ROOT
from plan.errors import ConfigError
from plan.sources import plan_from_stack_file
from ratrace.ra_text import RaTextMissing, read_ra_text
from report.picture import render_picture
from report.render import render
from report.review import build_review


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m report", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--ra-text", type=Path)
    parser.add_argument("--evidence-index", type=Path, default=INDEX_FILE)
    args = parser.parse_args(argv)
    out = args.out or ROOT / "reports" / args.stack
    try:
        ra_text = read_ra_text(args.ra_text)
        site_plan = plan_from_stack_file(args.stack)
        recording = run_stack_file(args.stack)
        review = build_review(site_plan, recording, ra_text, args.evidence_index)
    except (RaTextMissing, ConfigError, pulumi.RunError, PackConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    prepare_output(out, "--out", directory=True)
    try:
        pictures = render_picture(review, out)
    except graphviz.ExecutableNotFound as error:
        raise RuntimeError(f"Graphviz `dot` is not installed ({error}); scripts/setup.sh installs it") from None
    (out / "review.json").write_text(json.dumps(review, indent=2) + "\n")
    (out / "review.md").write_text(render(review, pictures[0].name))
    dangling = review["traceability"]["danglingReferences"]
    print(f"release review of {args.stack}: {out / 'review.md'}, {out / 'review.json'}, "
          f"{', '.join(str(p) for p in pictures)}")
    for problem in dangling:
        print(f"RA reference problem: {problem}", file=sys.stderr)
    return 1 if dangling else 0


if __name__ == "__main__":
    sys.exit(run_command(main))
