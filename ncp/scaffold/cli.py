"""Write a new stack file for a site from a hardware profile and a few answers.

    ncp scaffold --site ncp-west-2 --profile hgx-h200 --environment prod --gpu-nodes 16 \\
        --tenant acme:64:96 --tenant beta:8

Every value only the site knows (identity-provider groups, NIC names, the rail subnet, the evidence location) is
written as REPLACE-ME(<what>), which config validation refuses until it is replaced: `ncp check
--stack <site>` lists each one with the command that sets it. No example key, salt, digest or registry org of
another site is copied. Endpoints come from the site's AIConfigurator sizing files (`ncp sizing ... --out
sites/<site>/sizing/<endpoint>.yaml`, docs/operator-guide.md "Serving endpoints"): `--endpoint
acme:sites/west/sizing/chat.yaml` writes the endpoint
and gives its tenant the GPUs it is sized to and the CPU and memory quotas its pods take at once
(ncp/scaffold/sized.py);
a tenant without sized endpoints gets an estimate from its GPUs, and `ncp check` re-counts once endpoints exist.
Exit codes: 0 written, 2 bad input (unknown profile, bad tenant spec, the file exists, --out not writable), 3 internal
error.
"""
import argparse
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from ncp.cli_exit import BAD_INPUT, BadInput, OK, OutputPathError, prepare_output
from ncp.plan.break_fix import gate_images
from ncp.plan.catalog import load_dynamo_runtime, load_matrix, load_profile, profile_names
from ncp.plan.config import Environment
from ncp.plan.rules.cross_field import MANDATORY_ENVIRONMENTS
from ncp.plan.profile import HardwareProfile
from ncp.plan.config import NetworkOperatorSettings
from ncp.plan.errors import VENV_NCP
from ncp.plan.rules.raw import PLACEHOLDER
from ncp.plan.names import PROJECT
from ncp.plan.fabric import rail_prefix_for
from ncp.plan.sources import stack_file
from ncp.scaffold.sized import (
    SizedEndpoint, SizingInputError, benchmark_image_lines, endpoint_lines, parse_endpoint, quota_lines, sized_gpus,
    storage_lines, tenant_demand,
)

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$")
ENVIRONMENTS = ("lab", "staging", "prod")
RUN = VENV_NCP
DEFAULT_RAIL_PREFIX = NetworkOperatorSettings.model_fields["rail_prefix_length"].default
DEFAULT_BLOCK_SIZE = NetworkOperatorSettings.model_fields["per_node_block_size"].default
# Host resources of a tenant's frontends, planners, staging and benchmark Jobs beside its GPU workers (cores, GiB):
# our sizing decision for a new site's quota, raised by the site where ncp check says so.
PLATFORM_HEADROOM = (16, 64)


class ScaffoldInputError(BadInput):
    pass


@dataclass(frozen=True)
class TenantAnswer:
    name: str
    gpu_quota: int
    gpu_limit: int
    endpoints: tuple[SizedEndpoint, ...] = ()

    @classmethod
    def parse(cls, spec: str, endpoints: Sequence[SizedEndpoint] = ()) -> "TenantAnswer":
        """NAME:GPU_QUOTA[:GPU_LIMIT]; a tenant with sized endpoints may leave its GPUs to the sizing (NAME)."""
        match = re.fullmatch(r"([^:]+)(?::([0-9]+)(?::([0-9]+))?)?", spec)
        if not match or not DNS_LABEL.match(match.group(1)):
            raise ScaffoldInputError(f"--tenant {spec!r}: write NAME:GPU_QUOTA[:GPU_LIMIT] with NAME a DNS label, "
                                     "e.g. acme:64:96")
        name = match.group(1)
        mine = tuple(e for e in endpoints if e.tenant == name)
        quota = int(match.group(2)) if match.group(2) else None
        limit = int(match.group(3)) if match.group(3) else None
        if quota is None and not mine:
            raise ScaffoldInputError(f"--tenant {spec!r}: give its GPUs (NAME:GPU_QUOTA[:GPU_LIMIT]) or its sized "
                                     f"endpoints (--endpoint {name}:sites/<site>/sizing/<endpoint>.yaml)")
        if quota is not None and limit is not None and limit < quota:
            raise ScaffoldInputError(f"--tenant {spec!r}: the GPU limit ({limit}) is below the quota ({quota})")
        quota, limit = sized_gpus(name, quota, limit, mine)
        return cls(name, quota, limit, mine)


def placeholder(what: str) -> str:
    return f"{PLACEHOLDER}({what})"


def q(text: str) -> str:
    """Placeholders hold spaces and parentheses: quoted."""
    return f'"{text}"'


def _gpu_nodes_note(profile: HardwareProfile, gpu_nodes: int) -> str:
    note = f"{profile.name}: {profile.gpu.per_node} GPUs per node -> {gpu_nodes * profile.gpu.per_node} GPUs"
    if profile.nvlink.multi_node:
        per_domain = profile.nvlink.domain_size // profile.gpu.per_node
        note += (f"; one NVLink domain (rack) is {per_domain} nodes ({profile.nvlink.domain_size} GPUs): count whole "
                 f"racks, i.e. a multiple of {per_domain}")
    else:
        note += f"; NVLink stays inside a node ({profile.nvlink.domain_size} GPUs)"
    return note


def _partner_decisions(options: "SiteOptions", sized: bool) -> list[str]:
    """The partner products the site uses, each a placeholder decision of its kind."""
    products = [("certManager", "the site's certificate manager for NVSentinel's datastore certificates, e.g. "
                                "cert-manager"),
                ("metricsBackend", "the site's metrics backend that loads the monitors and rules, e.g. its "
                                   "Prometheus Operator")]
    if options.air_gapped:
        products.append(("registry", "the site's chart and image mirror, e.g. its Harbor"))
    if options.gateway:
        products.append(("gateway", "the site's Gateway API implementation, e.g. Envoy Gateway"))
    if sized:
        products.append(("storage", "storage product of the site, naming each storageClass of serving.storage"))
    return [f"  {PROJECT}:localDecisions:",
            "    # The partner products every site uses; add one entry per further kind the stack uses",
            "    # (storage: naming each storageClass, gateway, registry).",
            *[line for kind, what in products
              for line in (f"    - kind: {kind}", f"      decision: \"{placeholder(what)}\"",
                           f"      reason: \"{placeholder('why the site chose it')}\"")]]


@dataclass(frozen=True)
class SiteOptions:
    """What a site may ask the scaffold for beyond its tenants (flags of the same names)."""

    mig_pool: Optional["MigPool"] = None
    gateway: Optional[str] = None
    air_gapped: bool = False
    monitoring_release: Optional[str] = None


@dataclass(frozen=True)
class MigPool:
    tenant: str
    layout: dict[str, int]

    @classmethod
    def parse(cls, spec: str, profile: HardwareProfile) -> "MigPool":
        match = re.fullmatch(r"([a-z0-9-]+):((?:[0-9]+g\.[0-9]+gb=[0-9]+,?)+)", spec)
        if not match:
            raise ScaffoldInputError(f"--mig-pool {spec!r}: write TENANT:PROFILE=COUNT[,PROFILE=COUNT], e.g. "
                                     f"vision:{next(iter(profile.gpu.mig.instances), '1g.23gb')}=7")
        if not profile.gpu.mig.supported:
            raise ScaffoldInputError(f"--mig-pool: profile {profile.name} ({profile.gpu.model}) has no MIG")
        layout = {name: int(count) for name, count in
                  (item.split("=") for item in match.group(2).strip(",").split(","))}
        unknown = sorted(set(layout) - set(profile.gpu.mig.instances))
        if unknown:
            raise ScaffoldInputError(f"--mig-pool: {', '.join(unknown)} not a MIG profile of {profile.gpu.model}; use "
                                     f"{', '.join(profile.gpu.mig.instances)}")
        return cls(match.group(1), layout)

    @property
    def slices_per_gpu(self) -> int:
        return sum(self.layout.values())


def _host_quotas(gpus: int, profile: HardwareProfile) -> tuple[str, str]:
    """cpuQuota and memoryQuota that hold the tenant's GPUs as whole-node workers (data/dynamo-backends.yaml: host
    cores and memory per GPU, plus the largest /dev/shm of any backend per worker pod) and its frontends and Jobs
    (PLATFORM_HEADROOM). Smaller workers need more: ncp check computes the need from the sizing files."""
    runtime = load_dynamo_runtime()
    pods = max(1, math.ceil(gpus / profile.gpu.per_node))
    shm = max(backend.shared_memory_gi for backend in runtime.backends.values())
    cpu = gpus * runtime.worker_resources.cpu_per_gpu + PLATFORM_HEADROOM[0]
    memory = gpus * runtime.worker_resources.memory_per_gpu_gi + pods * shm + PLATFORM_HEADROOM[1]
    return str(cpu), f"{memory}Gi"


def _rail_lines(profile: HardwareProfile, gpu_nodes: int) -> list[str]:
    nics = [q(placeholder(f"host netdev of east-west NIC {i}, e.g. ens{i + 1}f0np0"))
            for i in range(profile.fabric.nics_per_node)]
    prefix = min(DEFAULT_RAIL_PREFIX, rail_prefix_for(gpu_nodes, DEFAULT_BLOCK_SIZE))
    lines = ["    networkOperator:",
             f"      # {profile.fabric.nics_per_node} x {profile.fabric.nic_model} per node: one rail per NIC.",
             "      railInterfaces:", *[f"        - {nic}" for nic in nics],
             "      railSubnet: " + q(placeholder(f"east-west CIDR unused elsewhere, one /{prefix} per rail, e.g. "
                                                  "10.200.0.0/16"))]
    if prefix != DEFAULT_RAIL_PREFIX:
        lines.append(f"      railPrefixLength: {prefix}  # nv-ipam gives each of {gpu_nodes} nodes a block of "
                     f"{DEFAULT_BLOCK_SIZE} addresses per rail")
    return lines


def _serving_lines(environment: str, options: SiteOptions, endpoints: Sequence[SizedEndpoint],
                   profile: HardwareProfile) -> list[str]:
    rdma = profile.has_rdma_fabric
    lines = storage_lines(endpoints)
    if options.gateway:
        lines += ["      gatewayInferenceExtension: true",
                  "      gateway:",
                  f"        name: {options.gateway}  # the site's Gateway in tenancy.gatewayNamespace (a prerequisite)",
                  "        localDecision:",
                  "          decision: " + q(placeholder("the Gateway implementation the site runs, e.g. Envoy "
                                                         "Gateway")),
                  "          reason: " + q(placeholder("why the site chose it (the RA names no implementation)")),
                  "        routes: []  # one route per served model, added with the endpoints"]
    if options.air_gapped:
        lines += ["      modelStaging:",
                  "        airGapped: true",
                  "        mirror:  # the in-cluster model mirror staging Jobs fetch from",
                  "          service: " + q(placeholder("model mirror Service name")),
                  "          namespace: " + q(placeholder("model mirror namespace")),
                  "          port: " + q(placeholder("model mirror port, e.g. 8080"))]
    validation = benchmark_image_lines(endpoints)
    if environment == "prod":
        validation += [
                  "        # The ISV NCP Validation Suite publishes no image: build it, push it to the site's registry "
                  "and",
                  "        # pin it by digest (prod refuses a tag-only tool image).",
                  "        suiteImage: " + q(placeholder("site-built validation suite image, e.g. nvcr.io/<your NGC "
                                                         "org>/tools/isv-ncp-validation-suite:<version>@sha256:"
                                                         "<digest>"))]
        if rdma:
            validation += [
                "        # The NCCL readiness Job needs nccl-tests (MPI) and sshd: build it, pin it by digest.",
                "        ncclImage: " + q(placeholder("site-built nccl-tests image, e.g. nvcr.io/<your NGC org>/"
                                                      "tools/nccl-tests:<version>@sha256:<digest>"))]
    if validation:
        lines += ["      validation:", *validation]
    if environment == "prod":
        lines += ["      # The return-to-service gate's images (ncp node return-to-service): prod pins them by digest.",
                  "      imageDigests:",
                  *[f"        {key}: " + q(placeholder(f"sha256 digest of the {key} image the matrix pins, listed by "
                                                        f"{RUN} mirror --stack <site>"))
                    for key in gate_images(load_matrix(), profile)]]
    return ["    serving:", *lines] if lines else []


def render(site: str, profile: HardwareProfile, environment: str, gpu_nodes: int,
           tenants: list[TenantAnswer], options: Optional[SiteOptions] = None) -> str:
    options = options or SiteOptions()
    lines = [
        f"# Site {site} ({environment}) on hardware profile {profile.name}, written by `{RUN} scaffold`.",
        f"# Replace every {PLACEHOLDER}(...) value: `{RUN} check --stack {site}` lists what is left.",
        f"# Checklist of what the site must provide: `{RUN} checklist --stack {site}`.",
        "# Secrets only with --secret: `pulumi config set --secret <key> <value>` replaces a placeholder below",
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
    if environment == "prod":
        lines.append(f"  {PROJECT}:ngcApiKey: " + q(placeholder("NGC API key: set it with --secret")))
    components = []
    if options.air_gapped:
        components.append("    chartMirror: " + q(placeholder(f"project directory of the pinned charts: {RUN} "
                                                               f"mirror --stack {site} --script mirror.sh")))
    if options.mig_pool:
        layout = ", ".join(f"{name}: {count}" for name, count in options.mig_pool.layout.items())
        components += ["    gpuOperator:",
                       "      mig:",
                       "        strategy: single",
                       f"        layout: {{{layout}}}",
                       f"        nodePool: {options.mig_pool.tenant}  # only this tenant's nodes are partitioned"]
    if profile.has_rdma_fabric:
        components += _rail_lines(profile, gpu_nodes)
    if options.monitoring_release:
        components += ["    telemetry:",
                       "      # the label the site's Prometheus selects PodMonitors and rules by",
                       f"      prometheusSelectorLabels: {{release: {options.monitoring_release}}}"]
    endpoints = [e for tenant in tenants for e in tenant.endpoints]
    if environment == "prod":  # image signatures are verified at admission (the policy-controller is a prerequisite)
        components += ["    tenancy:",
                       "      imageSignatures:",
                       "        publicKeys: ["
                       + q(placeholder("PEM public key of the site's cosign signer (cosign.pub)")) + "]"]
    components += _serving_lines(environment, options, endpoints, profile)
    if components:
        lines += [f"  {PROJECT}:components:", *components]
    lines.append(f"  {PROJECT}:tenants:")
    for tenant in tenants:
        lines += _tenant_lines(tenant, profile, environment, len(tenants), options.mig_pool, bool(options.gateway))
    lines += endpoint_lines(endpoints)
    if Environment(environment) in MANDATORY_ENVIRONMENTS:  # ncp/plan/rules/ra.py: partner products are recorded
        lines += _partner_decisions(options, bool(endpoints))
    return "\n".join(lines) + "\n"


def _tenant_lines(tenant: TenantAnswer, profile: HardwareProfile, environment: str, tenant_count: int,
                  mig_pool: Optional[MigPool], gateway: bool) -> list[str]:
    cpu, memory = _host_quotas(tenant.gpu_limit, profile)
    mig = mig_pool is not None and mig_pool.tenant == tenant.name
    unit = mig_pool.slices_per_gpu if mig and mig_pool else 1
    lines = [f"    - name: {tenant.name}"]
    if mig:
        lines.append(f"      # Counted in MIG devices: {tenant.gpu_limit} GPUs x {unit} slices "
                     f"({', '.join(mig_pool.layout) if mig_pool else ''}).")
    lines += [f"      gpuQuota: {tenant.gpu_quota * unit}", f"      gpuLimit: {tenant.gpu_limit * unit}"]
    rdma = profile.has_rdma_fabric and any(  # RDMA workers run under a privileged exception: never on shared nodes
        e.result.mode == "disaggregated" or any(g.gpus_per_worker > profile.gpu.per_node for g in e.workers())
        for e in tenant.endpoints)
    if (environment == "prod" and tenant_count > 1) or mig or (rdma and tenant_count > 1):
        lines.append(f"      nodePool: {{nodes: {max(1, -(-tenant.gpu_limit // profile.gpu.per_node))}}}  "
                     "# GPU nodes of its own: the site labels and taints them (ncp checklist)")
    if tenant.endpoints:
        lines += quota_lines(tenant_demand(tenant.name, tenant.endpoints, profile, gateway), tenant.endpoints)
    else:
        lines += [f"      cpuQuota: \"{cpu}\"  # estimate without sized endpoints: whole-node workers of its GPUs and",
                  f"      memoryQuota: {memory}  # PLATFORM_HEADROOM (scaffold); --endpoint sizes it from its sizing"]
    lines += [f"      admins: [{q(placeholder(f'identity-provider group of {tenant.name} admins'))}]"]
    return lines


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ncp scaffold", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--site", required=True, help="site name (a DNS label); the stack file is Pulumi.<site>.yaml")
    p.add_argument("--profile", required=True, help=f"hardware profile: {', '.join(profile_names())}")
    p.add_argument("--environment", required=True, choices=ENVIRONMENTS)
    p.add_argument("--gpu-nodes", required=True, type=int, help="GPU worker nodes of the profile in this cluster")
    p.add_argument("--tenant", action="append", default=[], metavar="NAME:QUOTA[:LIMIT]",
                   help="a tenant with its guaranteed GPUs and hard cap (repeat per tenant)")
    p.add_argument("--mig-pool", metavar="TENANT:PROFILE=COUNT[,...]",
                   help="partition this tenant's dedicated nodes with a MIG layout, e.g. vision:1g.23gb=7 (its "
                        "GPU quota and limit are given in GPUs and written in MIG devices)")
    p.add_argument("--gateway", metavar="NAME", help="route endpoints through the site's Gateway of this name "
                                                     "(Gateway API Inference Extension)")
    p.add_argument("--air-gapped", action="store_true",
                   help="no egress: charts from a chart mirror, models from an in-cluster model mirror")
    p.add_argument("--monitoring-release", metavar="NAME",
                   help="the release label the site's Prometheus selects monitors and rules by")
    p.add_argument("--endpoint", action="append", default=[], metavar="TENANT:SIZING_FILE",
                   help="an endpoint of TENANT sized by this AIConfigurator sizing file (ncp sizing ... --out "
                        "sites/<site>/sizing/<endpoint>.yaml), named after the file; the tenant's GPU, CPU and memory "
                        "quotas are written from what its endpoints' pods take (repeat per endpoint)")
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
    profile = load_profile(args.profile)
    endpoints = [parse_endpoint(spec, profile) for spec in args.endpoint]
    tenants = [TenantAnswer.parse(spec, endpoints) for spec in args.tenant]
    unknown = sorted({e.tenant for e in endpoints} - {t.name for t in tenants})
    if unknown:
        raise ScaffoldInputError(f"--endpoint: {', '.join(unknown)} is not one of the --tenant names")
    repeated = sorted({e.name for e in endpoints if [x.name for x in endpoints].count(e.name) > 1})
    if repeated:
        raise ScaffoldInputError(f"--endpoint: two sizing files make endpoint {', '.join(repeated)}: endpoints are "
                                 "named after their files")
    mig_pool = MigPool.parse(args.mig_pool, profile) if args.mig_pool else None
    if mig_pool and mig_pool.tenant not in {t.name for t in tenants}:
        raise ScaffoldInputError(f"--mig-pool {args.mig_pool!r}: {mig_pool.tenant} is not one of the --tenant names")
    if args.gateway and not DNS_LABEL.match(args.gateway):
        raise ScaffoldInputError(f"--gateway {args.gateway!r}: use the Gateway's name (a DNS label)")
    options = SiteOptions(mig_pool, args.gateway, args.air_gapped, args.monitoring_release)
    out = args.out or stack_file(args.site)
    prepare_output(out, "--out")
    if out.exists() and not args.force:
        raise ScaffoldInputError(f"{out} exists: choose another --site or --out, or pass --force to overwrite it")
    text = render(args.site, profile, args.environment, args.gpu_nodes, tenants, options)
    out.write_text(text)
    return out


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        out = scaffold(args)
    except (ScaffoldInputError, SizingInputError, OutputPathError) as error:
        print(f"error: {error}", file=sys.stderr)
        return BAD_INPUT
    print(f"{out}: written. Next: replace every {PLACEHOLDER}(...) value, then "
          f"`{RUN} check --stack {args.site}` and `{RUN} checklist --stack {args.site}`.")
    return OK
