"""Release review of a stack.

    ncp report --stack prod [--out sites/prod/review] [--ra-text <RA text file>] [--evidence-index <file>]

Writes review.md, review.json and the site picture (site.svg, site.png) to --out (default sites/<stack>/review/,
beside the site's sizing files).
The RA text (--ra-text, $NCP_RA_TEXT, default ../shared/reference/...) feeds the RA traceability matrix; where the
default copy is absent (a fork without ../shared) the review is written with that section marked not available and
a warning; a file named with --ra-text or $NCP_RA_TEXT that is absent is bad input (exit 2).
Exit codes: 0 written; 1 a reference in the code points at text the RA does not contain (review still written);
2 bad input (stack config, pack config, RA text missing); 3 an internal error (Graphviz missing is reported as such).
"""
import argparse
import json
import os
import sys
from pathlib import Path
from typing import Optional

import graphviz
import pulumi

from ncp.cli_exit import prepare_output
from ncp.offline.policy_check import PackConfigError
from ncp.readmodel.recorder import run_stack_file
from ncp.plan.catalog import ROOT
from ncp.plan.errors import ConfigError
from ncp.plan.sources import plan_from_stack_file
from ncp.ratrace.matrix import summary
from ncp.ratrace.ra_text import RA_TEXT_ENV, RaTextMissing, ra_text_path, read_ra_text
from ncp.report.picture import render_picture
from ncp.report.render import render
from ncp.report.review import build_review


def _ra_text(named: Optional[Path]) -> tuple[Optional[str], str]:
    """The RA text and, where the default copy is absent (a fork without ../shared), why the review goes without
    its traceability section. A file named with --ra-text that is absent is bad input."""
    if named is not None or os.environ.get(RA_TEXT_ENV):
        return read_ra_text(named), ""
    try:
        return read_ra_text(), ""
    except RaTextMissing:
        return None, (f"the RA text is not at {ra_text_path()} (pass --ra-text <file> or set {RA_TEXT_ENV} to the "
                      "NVIDIA Inference Reference Architecture text)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="ncp report", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--ra-text", type=Path)
    parser.add_argument("--evidence-index", type=Path,
                        help="the evidence index (default: sites/<stack>/evidence/index.yaml)")
    args = parser.parse_args(argv)
    out = args.out or ROOT / "sites" / args.stack / "review"
    try:
        ra_text, missing = _ra_text(args.ra_text)
        site_plan = plan_from_stack_file(args.stack)
        recording = run_stack_file(args.stack)
        review = build_review(site_plan, recording, ra_text, args.evidence_index, missing)
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
    if review["traceability"]["available"]:
        print(f"RA traceability: {summary(review['traceability']['rows'])}")
    else:
        print(f"warning: RA traceability not available: {review['traceability']['reason']}", file=sys.stderr)
    for problem in dangling:
        print(f"RA reference problem: {problem}", file=sys.stderr)
    return 1 if dangling else 0
