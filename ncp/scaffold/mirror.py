"""The site's mirror list: every pinned chart the stack installs and every image its own resources run, for an
air-gapped site to copy on a connected machine (docs/operator-guide.md, "Air-gapped sites").

    ncp mirror --stack prod [--out mirror-list.yaml] [--script mirror.sh --registry <registry>]

The list (YAML) names each chart's source, version and digest where the matrix records one, and each image with the
resource that runs it. `--script` writes the commands that fill the mirror: `helm pull` of each chart into the
project's chart mirror directory and `skopeo copy` of each image into the site's registry. Images the charts run
by default (the operators' own) are not in the program's inputs: render each pulled chart with the stack's values
(`helm template`) and copy what it lists as well.
Exit codes: 0 written, 2 invalid stack config or output path, 3 internal error.
"""
import argparse
import shlex
import sys
from pathlib import Path
from typing import Any, Iterator

import pulumi
import yaml

from ncp.cli_exit import BAD_INPUT, OK, prepare_output
from ncp.readmodel.recorder import Recording, run_stack_file
from ncp.plan.errors import ConfigError
from ncp.plan.site_plan import SitePlan
from ncp.plan.sources import plan_from_stack_file

DEFAULT_MIRROR_DIR = "charts-mirror"


def _images(value: Any, where: str) -> Iterator[tuple[str, str]]:
    """(image, path) for every `image: <ref>` in a resource's inputs, and `{repository, image, version}` values."""
    if isinstance(value, dict):
        image = value.get("image")
        if isinstance(image, str) and image:
            if isinstance(value.get("repository"), str) and isinstance(value.get("version"), str):
                yield f"{value['repository'].rstrip('/')}/{image}:{value['version']}", where
            elif "/" in image or ":" in image:
                yield image, where
        for key, child in value.items():
            yield from _images(child, f"{where}.{key}")
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _images(child, f"{where}[{index}]")


def mirror_list(site_plan: SitePlan, recording: Recording) -> dict:
    charts = []
    for release in recording.releases().values():
        component = next(name for name in site_plan.matrix.components
                         if site_plan.matrix.pin(name).chart_name == release.inputs["chart"].rstrip("/").split("/")[-1])
        pin = site_plan.matrix.pin(component)
        charts.append({"component": component, "chart": pin.chart, "repository": pin.repository or None,
                       "version": pin.version,
                       "digest": getattr(pin, "digest", None) or "not recorded in the matrix: record the sha256 of "
                                                                 "the pulled .tgz with the mirror"})
    images: dict[str, list[str]] = {}
    for registration in recording.resources:
        for image, where in _images(registration.inputs, registration.name):
            images.setdefault(image, []).append(where)
    return {"site": site_plan.site.name, "environment": site_plan.environment.value,
            "charts": sorted(charts, key=lambda c: c["component"]),
            "images": [{"image": image, "usedBy": sorted(set(users))[:5]} for image, users in sorted(images.items())],
            "notDerived": "images the charts run by default (operators and their operands): render each pulled chart "
                          "with `helm template` and copy what it lists"}


def mirror_script(listing: dict, registry: str, mirror_dir: str) -> str:
    lines = ["#!/usr/bin/env bash",
             f"# Fills the chart mirror and registry of site {listing['site']} on a connected machine "
             "(ncp mirror --script).",
             "set -euo pipefail", f"mkdir -p {shlex.quote(mirror_dir)}"]
    for chart in listing["charts"]:
        source = chart["chart"] if chart["chart"].startswith("oci://") or not chart["repository"] else \
            f"{chart['chart']} --repo {chart['repository']}"
        lines.append(f"helm pull {source} --version {shlex.quote(chart['version'])} --untar "
                     f"--untardir {shlex.quote(mirror_dir)}")
    for entry in listing["images"]:
        image = entry["image"]
        path = image.split("/", 1)[1] if "/" in image and "." in image.split("/", 1)[0] else image
        tagged = path.split("@")[0] if ":" in path.split("@")[0].rsplit("/", 1)[-1] else path
        lines.append(f"skopeo copy --all --preserve-digests docker://{shlex.quote(image)} "
                     f"docker://{shlex.quote(registry.rstrip('/') + '/' + tagged)}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="ncp mirror", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True, help="stack name: reads Pulumi.<stack>.yaml")
    parser.add_argument("--out", type=Path, help="write the list here instead of printing it")
    parser.add_argument("--script", type=Path, help="also write the helm pull / skopeo copy commands here")
    parser.add_argument("--registry", default="<site registry>", help="the site's registry, for --script")
    parser.add_argument("--mirror-dir", default=DEFAULT_MIRROR_DIR,
                        help=f"project directory of the chart mirror (components.chartMirror; default "
                             f"{DEFAULT_MIRROR_DIR})")
    args = parser.parse_args(argv)
    try:
        site_plan = plan_from_stack_file(args.stack)
        recording = run_stack_file(args.stack)
    except (ConfigError, pulumi.RunError) as error:
        print(error, file=sys.stderr)
        return BAD_INPUT
    listing = mirror_list(site_plan, recording)
    text = yaml.safe_dump(listing, sort_keys=False, width=120)
    if args.out:
        prepare_output(args.out, "--out").write_text(text)
        print(f"{args.out}: written ({len(listing['charts'])} charts, {len(listing['images'])} images)")
    else:
        print(text, end="")
    if args.script:
        prepare_output(args.script, "--script").write_text(mirror_script(listing, args.registry, args.mirror_dir))
        print(f"{args.script}: written")
    return OK
