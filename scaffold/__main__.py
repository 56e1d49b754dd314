"""Write a new stack file for a site from a hardware profile and a few answers.

    python -m scaffold --site ncp-west-2 --profile hgx-h200 --environment prod --gpu-nodes 16 \\
        --tenant acme:64:96 --tenant beta:8

Every value only the site knows (identity-provider groups, NIC names, the rail subnet, the evidence location) is
written as REPLACE-ME(<what>), which config validation refuses until it is replaced: `python -m offline.check
--stack <site>` lists each one with the command that sets it. No example key, salt, digest or registry org of
another site is copied. Endpoints are added after sizing (README, "Serving endpoints").
Exit codes: 0 written, 2 bad input (unknown profile, bad tenant spec, the file exists, --out not writable), 3 internal
error.
"""
import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from cli_exit import BAD_INPUT, OK, OutputPathError, prepare_output, run_command
from plan.catalog import load_profile, profile_names
from plan.config import Environment
from plan.cross_field import MANDATORY_ENVIRONMENTS
from plan.profile import HardwareProfile
from plan.raw_checks import PLACEHOLDER
from plan.names import PROJECT
from plan.sources import stack_file

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$")
ENVIRONMENTS = ("lab", "staging", "prod")


class ScaffoldInputError(ValueError):
    pass


@dataclass(frozen=True)
class TenantAnswer:
    name: str
    gpu_quota: int
    gpu_limit: int

    @classmethod
    def parse(cls, spec: str) -> "TenantAnswer":
        match = re.fullmatch(r"([^:]+):([0-9]+)(?::([0-9]+))?", spec)
        if not match or not DNS_LABEL.match(match.group(1)):
            raise ScaffoldInputError(f"--tenant {spec!r}: write NAME:GPU_QUOTA[:GPU_LIMIT] with NAME a DNS label, "
                                     "e.g. acme:64:96")
        quota = int(match.group(2))
        limit = int(match.group(3)) if match.group(3) else quota
        if limit < quota:
            raise ScaffoldInputError(f"--tenant {spec!r}: the GPU limit ({limit}) is below the quota ({quota})")
        return cls(match.group(1), quota, limit)


def placeholder(what: str) -> str:
    return f"{PLACEHOLDER}({what})"


def _gpu_nodes_note(profile: HardwareProfile, gpu_nodes: int) -> str:
    note = f"{profile.name}: {profile.gpu.per_node} GPUs per node -> {gpu_nodes * profile.gpu.per_node} GPUs"
    if profile.nvlink.multi_node:
        per_domain = profile.nvlink.domain_size // profile.gpu.per_node
        note += (f"; one NVLink domain (rack) is {per_domain} nodes ({profile.nvlink.domain_size} GPUs): count whole "
                 f"racks, i.e. a multiple of {per_domain}")
    else:
        note += f"; NVLink stays inside a node ({profile.nvlink.domain_size} GPUs)"
    return note


def render(site: str, profile: HardwareProfile, environment: str, gpu_nodes: int,
           tenants: list[TenantAnswer]) -> str:
    q = lambda text: f'"{text}"'  # noqa: E731 - placeholders hold spaces and parentheses
    lines = [
        f"# Site {site} ({environment}) on hardware profile {profile.name}, written by `python -m scaffold`.",
        f"# Replace every {PLACEHOLDER}(...) value: `python -m offline.check --stack {site}` lists what is left.",
        f"# Checklist of what the site must provide: `python -m scaffold.checklist --stack {site}`.",
        f"# Secrets only with --secret, e.g. pulumi config set --secret {PROJECT}:ngcApiKey <NGC API key>",
        "# (`pulumi stack init` adds this stack's own encryptionsalt; never copy another stack's salt or values).",
        "config:",
        f"  {PROJECT}:site:",
        f"    name: {site}",
        f"    environment: {environment}",
        f"    hardwareProfile: {profile.name}",
        f"    gpuNodes: {gpu_nodes}  # {_gpu_nodes_note(profile, gpu_nodes)}",
    ]
    if Environment(environment) in MANDATORY_ENVIRONMENTS:  # the pack's hardware-profile-and-evidence is mandatory
        lines += [
            "    validationEvidence:",
            f"      path: {q(placeholder('where acceptance evidence is stored, e.g. s3://<bucket>/acceptance/'))}",
            f"      owner: {q(placeholder('team that owns validation evidence'))}",
        ]
    components = []
    if profile.has_rdma_fabric:
        nics = [q(placeholder(f"host netdev of east-west NIC {i}, e.g. ens{i + 1}f0np0"))
                for i in range(profile.fabric.nics_per_node)]
        components += [
            "    networkOperator:",
            f"      # {profile.fabric.nics_per_node} x {profile.fabric.nic_model} per node: one rail per NIC.",
            "      railInterfaces:",
            *[f"        - {nic}" for nic in nics],
            "      railSubnet: "
            + q(placeholder("east-west CIDR unused elsewhere, one /24 per rail, e.g. 10.200.0.0/16")),
        ]
    if environment == "prod":
        components += [
            "    serving:",
            "      validation:",
            "        # The ISV NCP Validation Suite publishes no image: build it, push it to the site's registry and",
            "        # pin it by digest (prod refuses a tag-only tool image).",
            "        suiteImage: " + q(placeholder("site-built validation suite image, e.g. "
                                               "<registry>/isv-ncp-validation-suite:<tag>@<sha256 digest>")),
        ]
    if components:
        lines += [f"  {PROJECT}:components:", *components]
    lines.append(f"  {PROJECT}:tenants:")
    for tenant in tenants:
        lines += [
            f"    - name: {tenant.name}",
            f"      gpuQuota: {tenant.gpu_quota}",
            f"      gpuLimit: {tenant.gpu_limit}",
        ]
        if environment == "prod" and len(tenants) > 1:  # prod refuses tenants sharing nodes (RA Workload Isolation)
            lines.append(f"      nodePool: {{nodes: {max(1, -(-tenant.gpu_limit // profile.gpu.per_node))}}}  "
                         "# GPU nodes of its own: the site labels and taints them (python -m scaffold.checklist)")
        lines += [
            f"      admins: [{q(placeholder(f'identity-provider group of {tenant.name} admins'))}]",
        ]
    return "\n".join(lines) + "\n"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m scaffold", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--site", required=True, help="site name (a DNS label); the stack file is Pulumi.<site>.yaml")
    p.add_argument("--profile", required=True, help=f"hardware profile: {', '.join(profile_names())}")
    p.add_argument("--environment", required=True, choices=ENVIRONMENTS)
    p.add_argument("--gpu-nodes", required=True, type=int, help="GPU worker nodes of the profile in this cluster")
    p.add_argument("--tenant", action="append", default=[], metavar="NAME:QUOTA[:LIMIT]",
                   help="a tenant with its guaranteed GPUs and hard cap (repeat per tenant)")
    p.add_argument("--out", type=Path, help="where to write (default: Pulumi.<site>.yaml in the project)")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    return p


def scaffold(args: argparse.Namespace) -> Path:
    if not DNS_LABEL.match(args.site):
        raise ScaffoldInputError(f"--site {args.site!r}: use lower-case letters, digits and '-' (a DNS label)")
    if args.profile not in profile_names():
        raise ScaffoldInputError(f"--profile {args.profile!r}: use one of {', '.join(profile_names())}")
    if args.gpu_nodes < 1:
        raise ScaffoldInputError("--gpu-nodes: at least 1")
    if not args.tenant:
        raise ScaffoldInputError("--tenant: name at least one tenant, e.g. --tenant acme:8:16")
    tenants = [TenantAnswer.parse(spec) for spec in args.tenant]
    out = args.out or stack_file(args.site)
    prepare_output(out, "--out")
    if out.exists() and not args.force:
        raise ScaffoldInputError(f"{out} exists: choose another --site or --out, or pass --force to overwrite it")
    text = render(args.site, load_profile(args.profile), args.environment, args.gpu_nodes, tenants)
    out.write_text(text)
    return out


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        out = scaffold(args)
    except (ScaffoldInputError, OutputPathError) as error:
        print(f"error: {error}", file=sys.stderr)
        return BAD_INPUT
    print(f"{out}: written. Next: replace every {PLACEHOLDER}(...) value, then "
          f"`python -m offline.check --stack {args.site}` and `python -m scaffold.checklist --stack {args.site}`.")
    return OK


if __name__ == "__main__":
    sys.exit(run_command(main))
