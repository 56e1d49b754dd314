"""Every validation of the stack config, as data: `RULES`, the pack's `POLICIES` idea one layer down.

`build_plan` (ncp/plan/site_plan.py) runs the `raw` rules, parses the config, runs every `config` rule (collecting
every problem) and only then derives the plan. The operator guide's list of what the program refuses is generated
from this table (`ncp config-reference`)."""
from typing import Any, Sequence

import importlib

from ncp.plan import catalog, local_overlay
from ncp.plan.errors import Problem, problems_from_validation
from ncp.plan.names import BASE_KEY, PINS_KEY, PROJECT, TENANT_DEFAULTS_KEY
from ncp.plan.rules import cross_field, endpoints, gateway, inference_services, local, quota, ra, raw, site
from ncp.plan.rules.registry import STAGES, RawInputs, Rule, RuleInputs

P = f"{PROJECT}:"
SET = "pulumi config set --path '<path>' <value>"
RM = "pulumi config rm --path '<path>'"
PROMETHEUS_URL = "http://<prometheus service>.<namespace>.svc:9090"


def _reader(module: str, name: str):
    """An input rule's reader in the plan's assembly (it reads a stack and builds its plan, and so runs these
    rules): looked up when called, so the rules stay below it."""
    def read(*args, **kwargs):
        return getattr(importlib.import_module(module), name)(*args, **kwargs)
    read.__qualname__ = f"{module}.{name}"
    return read


def _config(check):
    return lambda i: check(i.config)


def _with_plan(check):
    return lambda i: check(i.config, i.profile, i.endpoints if i.profile is not None else [])


RULES: tuple[Rule, ...] = (
    # --- documents, as they are read (the reader stamps the id: ncp/plan/sources.py, site_base.py, ...) ----------
    Rule("input.stack-file", "Pulumi.<stack>.yaml", "a stack file that is missing, unreadable, not UTF-8, not YAML, "
         "nested without end, or whose `config:` is not a mapping of string keys", "edit Pulumi.<stack>.yaml at the "
         "line named (pulumi stack init <stack> creates a missing one)",
         _reader("ncp.plan.sources", "read_stack_file"), stage="input"),
    Rule("site.base", f"{P}{BASE_KEY}", "a base that is not a file of the project, or that holds a "
         "per-site key or a secret", f"edit the base file, {P}<key>: move it into the stack file",
         _reader("ncp.plan.site_base", "resolved_config"), stage="input"),
    Rule("site.tenant-defaults", f"{P}{TENANT_DEFAULTS_KEY}", "tenant defaults that are not a mapping",
         f"edit Pulumi.<stack>.yaml, {P}{TENANT_DEFAULTS_KEY}: write a mapping of tenant keys",
         _reader("ncp.plan.site_base", "resolved_config"), stage="input"),
    Rule("site.version-pins", f"{P}{PINS_KEY}", "a version pin with unknown or missing fields, of a "
         "chart the matrix does not have, pinned twice, or past its wave's deadline in prod",
         f"edit Pulumi.<stack>.yaml, {P}{PINS_KEY}[i]: the key named", _reader("ncp.plan.site_base", "read_pins"),
         stage="input", policy="charts-pinned"),
    Rule("input.local-overlay", "$NCP_LOCAL_OVERLAY", "a local overlay that is not YAML or sets a key other than "
         "the local control plane's", "export NCP_LOCAL_OVERLAY=tools/e2e/local-control-plane.yaml",
         local_overlay.read_overlay, stage="input"),
    Rule("input.data-file", "data/*.yaml, profiles/*.yaml", "a project data file or hardware profile that cannot "
         "be read or does not match its schema", "edit the file named, at the key named", catalog.load_matrix,
         stage="input"),
    Rule("schema", f"{P}<any key>", "a key the schema does not know, a missing key, a value of the wrong type or "
         "out of its bounds, a combination a model validator refuses", f"{SET} (the config reference lists each "
         "key: docs/config-reference.md)", problems_from_validation, stage="input"),
    # --- raw values, before the schema -------------------------------------------------------------------------
    Rule("raw.placeholder", f"{P}<any key>", "a scaffold placeholder REPLACE-ME(...) left in the stack",
         f"{SET} with the site's value", lambda i: raw.placeholder_problems(dict(i.raw), P, site.SECRET_KEYS),
         stage="raw"),
    Rule("raw.exact-number", f"{P}<any key>", "a number the engine cannot carry exactly (NaN, infinite, > 2^53)",
         f"{SET} with a finite number", lambda i: raw.number_problems(dict(i.raw), P), stage="raw"),
    Rule("raw.secret-in-plain-text", f"{P}ngcApiKey", "a secret key stored in plain text",
         f"pulumi config rm {P}ngcApiKey && pulumi config set --secret {P}ngcApiKey", site.secrets_encrypted,
         stage="raw", policy="secret-hygiene"),
    Rule("local.test-cluster-settings", f"{P}components.chartMirror, {P}components.skipAwait",
         "stand-in charts or skipAwait in a reviewed environment; an air-gapped site without a chart mirror",
         f"pulumi config rm --path '{P}components.<key>' (the local control plane's overlay sets them), or "
         "ncp mirror --stack <site>", lambda i: local.local_setting_problems(i.unmerged, i.overlay), stage="raw",
         policy="charts-pinned"),
    # --- the site against its profile and the matrix -------------------------------------------------------------
    Rule("site.known-profile", f"{P}site.hardwareProfile", "a hardware profile with no file in profiles/",
         f"pulumi config set --path '{P}site.hardwareProfile' <profile>", site.known_profile,
         policy="hardware-profile-and-evidence",
         ra='Physical Architecture: "Do not inherit HGX or NVL72 assumptions by default."'),
    Rule("site.kubernetes-version", f"{P}site.kubernetesVersion", "a Kubernetes version the matrix does not support",
         f"pulumi config set --path '{P}site.kubernetesVersion' <supported version>", site.kubernetes_version,
         ra='Architecture Decision Guardrails: "The platform needs a declared Kubernetes API surface"'),
    Rule("site.mig-layout", f"{P}components.gpuOperator.mig", "MIG on a profile without it, a MIG profile the "
         "profile does not accept, a layout that does not fit one GPU, a pool tenant without dedicated nodes",
         f"{RM} or {SET} (profiles/<profile>.yaml gpu.mig)", site.mig_layout, needs_profile=True,
         policy="gpu-sharing"),
    Rule("site.driver", f"{P}components.gpuOperator.driver, .driverUpgradePolicy", "a managed driver where the "
         "profile's node image ships one, an upgrade policy for a preinstalled driver or with unknown keys",
         f"pulumi config rm --path '{P}components.gpuOperator.driver'", site.driver, needs_profile=True),
    Rule("site.rails", f"{P}components.networkOperator.railInterfaces, .railSubnet, .railPrefixLength",
         "rails on a profile without an RDMA fabric, none where it has one, more rails than NICs, an interface "
         "twice, rail subnets too small for every GPU node's nv-ipam block",
         f"pulumi config set --path '{P}components.networkOperator.railPrefixLength' <prefix>", site.rail_interfaces,
         needs_profile=True, policy="disaggregation-fabric",
         ra='Networking: "so the highest-volume traffic remains on the most appropriate fabric"'),
    Rule("site.topology-rack-label", f"{P}components.scheduling.topologyAware", "topology-aware placement on a "
         "profile that declares no rack label", f"pulumi config set --path '{P}components.scheduling.topologyAware' "
         "false, or edit profiles/<profile>.yaml topologyLabels.rack", site.topology_rack_label, needs_profile=True,
         ra='Physical Architecture: "Do not inherit HGX or NVL72 assumptions by default."'),
    Rule("site.gpu-capacity", f"{P}tenants[i].gpuLimit, {P}tenants", "a tenant's gpuLimit or the sum of gpuQuota "
         "above the site's GPUs", f"pulumi config set --path '{P}site.gpuNodes' <nodes>, or lower the quota",
         site.capacity, needs_profile=True, policy="gpu-workloads-through-kai"),
    Rule("tenancy.dedicated-nodes", f"{P}tenants[i].nodePool", "node pools larger than the site or smaller than "
         "the tenant's gpuLimit; tenants without dedicated nodes in prod with several tenants",
         f"pulumi config set --path '{P}tenants[i].nodePool.nodes' <nodes>", site.node_pools, needs_profile=True,
         policy="tenant-isolation",
         ra='Workload Isolation: "namespaces are useful but should not be the only isolation boundary"'),
    Rule("tenancy.excepted-tenant-nodes", f"{P}tenants[i].nodePool", "a tenant whose workers need a privileged "
         "Pod Security exception (RDMA, KV offload to disk) sharing nodes with other tenants",
         f"pulumi config set --path '{P}tenants[i].nodePool.nodes' <nodes>", site.excepted_tenants,
         needs_profile=True, policy="tenant-isolation"),
    Rule("telemetry.retention-tier", f"{P}components.serving.storage.telemetryRetention", "a telemetry-retention "
         "tier when the program deploys no Prometheus", f"pulumi config rm --path "
         f"'{P}components.serving.storage.telemetryRetention'", site.telemetry_retention, policy="storage-tiers"),
    Rule("prod.ngc-api-key", f"{P}ngcApiKey", "prod without the NGC API key",
         f"pulumi config set --secret {P}ngcApiKey <NGC API key>", site.ngc_api_key, policy="secret-hygiene"),
    Rule("prod.storage-readiness-image", f"{P}components.serving.validation.storageImage", "prod on an RDMA profile "
         "with storage tiers and no fio image (readiness judged on NCCL alone)",
         f"pulumi config set --path '{P}components.serving.validation.storageImage' <image>@sha256:<digest>",
         site.storage_readiness, policy="readiness-evidence"),
    Rule("prod.pull-credentials", f"{P}components.tenancy.pullCredentials", "sharedKey in prod (the provider's NGC "
         "key in every tenant namespace)", f"pulumi config set --path '{P}components.tenancy.pullCredentials' node",
         site.pull_credentials, policy="secret-hygiene"),
    # --- serving endpoints ---------------------------------------------------------------------------------------
    Rule("endpoints.storage", f"{P}components.serving.storage", "endpoints without storage tiers",
         f"pulumi config set --path '{P}components.serving.storage.<tier>.storageClass' <class>",
         endpoints.storage_required, policy="storage-tiers"),
    Rule("endpoints.benchmark-image", f"{P}components.serving.validation.benchmarkImage", "endpoints without an "
         "AIPerf image", f"pulumi config set --path '{P}components.serving.validation.benchmarkImage' <image>",
         endpoints.benchmark_image_required, policy="acceptance-evidence"),
    Rule("prod.validation-suite-image", f"{P}components.serving.validation.suiteImage", "the validation suite in "
         "prod without its image", f"pulumi config set --path '{P}components.serving.validation.suiteImage' "
         "<image>@sha256:<digest>", endpoints.suite_image_required, policy="acceptance-evidence"),
    Rule("prod.tool-image-digest", f"{P}components.serving.validation.suiteImage, .benchmarkImage", "tool images "
         "pinned by tag only in prod", f"pulumi config set --path '{P}components.serving.validation.<key>' "
         "<image>@sha256:<digest>", endpoints.tool_images_by_digest, policy="image-references"),
    Rule("endpoints.known-tenant", f"{P}endpoints[i].tenant", "an endpoint of an unknown tenant",
         f"pulumi config set --path '{P}endpoints[i].tenant' <tenant>", endpoints.known_tenant,
         policy="tenant-isolation"),
    Rule("endpoints.model-class", f"{P}endpoints[i].model.class", "a model class the disposition matrix does not "
         "list", f"pulumi config set --path '{P}endpoints[i].model.class' <class> (data/backend-disposition.yaml)",
         endpoints.model_class_known),
    Rule("endpoints.backend-disposition", f"{P}endpoints[i].backend", "a backend the disposition matrix does not "
         "accept for the model class in this environment", f"pulumi config set --path '{P}endpoints[i].backend' "
         "<backend>", endpoints.backend_accepted,
         ra='AI Platform-as-a-Service: "maintain a backend disposition matrix"'),
    Rule("endpoints.model-source", f"{P}endpoints[i].model.source", "a model source that is not allowlisted or has "
         "no staging recipe", f"pulumi config set --path '{P}endpoints[i].model.source' hf://... "
         "(data/allowlists.yaml)", endpoints.model_source_allowed, policy="model-provenance"),
    Rule("prod.serving-image-digest", f"{P}components.serving.imageDigests.<image>", "a serving image without a "
         "digest in prod", f"pulumi config set --path '{P}components.serving.imageDigests.<image>' sha256:<digest>",
         endpoints.serving_images_by_digest, policy="image-references"),
    Rule("prod.gate-image-digest", f"{P}components.serving.imageDigests.dcgm, .ncclTests", "a return-to-service "
         "gate image (DCGM, NCCL tests) without a digest in prod", f"pulumi config set --path "
         f"'{P}components.serving.imageDigests.<image>' sha256:<digest>", endpoints.gate_images_by_digest,
         needs_profile=True, policy="image-references"),
    Rule("endpoints.sizing-file", f"{P}endpoints[i].sizing", "a sizing file that is missing or does not match the "
         "endpoint (model, backend, GPU, mode)", "ncp sizing ... --out <file> (the command in the file's header)",
         endpoints.sizing_file_matches, needs_profile=True,
         ra='Model Optimization And Runtime Preparation: "New model bring-up should use versioned recipes"'),
    Rule("endpoints.multi-node-fabric", f"{P}endpoints[i].sizing", "workers spanning nodes on a profile with no "
         "RDMA fabric and no multi-node NVLink", "ncp sizing ... --gpus <GPUs per node>", endpoints.multi_node_fabric,
         needs_profile=True, policy="disaggregation-fabric"),
    Rule("endpoints.planner-bounds", f"{P}endpoints[i].planner", "planner bounds of unknown roles, min above max, "
         "no room to scale, above the tenant's gpuLimit, an SLA loop not slower than the load loop",
         f"pulumi config set --path '{P}endpoints[i].planner.maxReplicas.<role>' <workers>",
         endpoints.planner_bounds, needs_profile=True, policy="gpu-workloads-through-kai"),
    Rule("endpoints.kv-offload", f"{P}endpoints[i].kvOffload, {P}components.serving.storage.kvOffload",
         "KV offload without the tier, on a backend without the KV block manager, or to a tier smaller than the "
         "host tier", f"pulumi config set --path '{P}endpoints[i].kvOffload' false", endpoints.kv_offload_fits,
         needs_profile=True, policy="storage-tiers",
         ra='Model Data And Memory Architecture: "Host memory, local SSD, remote memory, and peer-to-peer transfer"'),
    Rule("endpoints.nvlink-domain", f"{P}endpoints[i].sizing", "a worker wider than one NVLink domain",
         "ncp sizing ... --gpus <domain size>", endpoints.nvlink_domain_fit, needs_profile=True,
         policy="disaggregation-fabric",
         ra='Data Center Architecture: "Use rack-scale GPU domains for large models"'),
    Rule("endpoints.attention-data-parallel", f"{P}endpoints[i].sizing", "attention data parallelism on a backend "
         "with no recorded switch for it", "ncp sizing --backend trtllm ..., or edit data/dynamo-backends.yaml, "
         "backends.<backend>.attentionDataParallelArg", endpoints.attention_data_parallel, needs_profile=True),
    Rule("endpoints.mig-slice-fit", f"{P}endpoints[i].sizing", "a worker whose per-GPU memory does not fit the "
         "tenant's MIG slice", f"pulumi config set --path '{P}components.gpuOperator.mig.layout' "
         "'{<larger profile>: <count>}'", endpoints.mig_slice_fit, needs_profile=True, policy="gpu-sharing"),
    Rule("endpoints.planner-prometheus", f"{P}components.serving.plannerPrometheusUrl", "a planner without the "
         "Prometheus it scales from", f"pulumi config set --path '{P}components.serving.plannerPrometheusUrl' "
         f"{PROMETHEUS_URL}", endpoints.planner_prometheus, policy="kv-routing-telemetry"),
    Rule("prod.api-server-egress", f"{P}components.serving.apiServerEgress", "prod endpoints without limited egress "
         "to the Kubernetes API", "kubectl get endpointslice -n default -l kubernetes.io/service-name=kubernetes, "
         "then set cidrs and ports", endpoints.api_server_egress, policy="tenant-isolation"),
    Rule("tenancy.endpoints-within-quota", f"{P}endpoints[i].sizing, {P}tenants[i].gpuQuota", "a tenant's "
         "endpoints needing more GPUs than its gpuQuota", f"pulumi config set --path '{P}tenants[i].gpuQuota' <GPUs>",
         endpoints.endpoints_within_quota, needs_profile=True, policy="gpu-workloads-through-kai"),
    # --- inference services ------------------------------------------------------------------------------------
    Rule("services.site-settings", f"{P}components.serving.storage, .validation.benchmarkImage, .imageDigests",
         "inference services without storage, an AIPerf image, or (prod) image digests",
         f"pulumi config set --path '{P}components.serving.imageDigests.<image>' sha256:<digest>",
         inference_services.site_settings, policy="image-references"),
    Rule("services.known-tenant", f"{P}inferenceServices[i].tenant", "a service of an unknown tenant",
         f"pulumi config set --path '{P}inferenceServices[i].tenant' <tenant>", inference_services.known_tenant,
         policy="tenant-isolation"),
    Rule("services.name-clash", f"{P}inferenceServices[i].name", "a service named like an endpoint",
         f"pulumi config set --path '{P}inferenceServices[i].name' <another name>", inference_services.name_clash),
    Rule("services.artifact-source", f"{P}inferenceServices[i].artifact.source", "an artifact source that is not "
         "allowlisted or has no engine-build recipe", f"pulumi config set --path "
         f"'{P}inferenceServices[i].artifact.source' hf://...", inference_services.artifact_source,
         policy="model-provenance"),
    Rule("prod.example-artifact", f"{P}inferenceServices[i].artifact", "an example's placeholder revision or "
         "sha256 in prod", f"pulumi config set --path '{P}inferenceServices[i].artifact.<key>' <value>",
         inference_services.example_placeholders, policy="model-provenance"),
    Rule("services.engine-gpu", f"{P}inferenceServices[i].engine.gpuProduct, .gpus.migProfile", "an engine built "
         "for another GPU, a MIG slice the tenant's nodes do not offer",
         f"pulumi config set --path '{P}inferenceServices[i].engine.gpuProduct' <product>",
         inference_services.engine_gpu, needs_profile=True, policy="gpu-sharing"),
    Rule("services.thresholds", f"{P}inferenceServices[i].slo.thresholds", "token thresholds on a KServe v2 run, "
         "a preprocessing threshold without preprocessing",
         f"pulumi config rm --path '{P}inferenceServices[i].slo.thresholds.<key>'",
         inference_services.token_thresholds, policy="acceptance-evidence"),
    Rule("tenancy.services-within-quota", f"{P}inferenceServices[i].replicas, {P}tenants[i].gpuQuota",
         "a tenant's services and endpoints needing more GPUs than its gpuQuota",
         f"pulumi config set --path '{P}tenants[i].gpuQuota' <GPUs>", inference_services.within_quota,
         needs_profile=True, policy="gpu-workloads-through-kai"),
    Rule("tenancy.quota-admission", f"{P}tenants[i].<cpu|memory|pod>Quota, .cpuLimit, .memoryLimit", "a tenant "
         "quota smaller than what quota admission counts for the pods the program puts in its namespace",
         f"pulumi config set --path '{P}tenants[i].<key>' <value>", quota.quota_problems, needs_profile=True,
         policy="tenant-isolation"),
    # --- gateway -----------------------------------------------------------------------------------------------
    Rule("gateway.site-settings", f"{P}components.serving.gateway", "a gateway without the inference extension, "
         "the extension without a gateway, the picker image without a digest in prod",
         f"pulumi config set --path '{P}components.serving.gatewayInferenceExtension' true",
         gateway.site_settings, policy="kv-routing-telemetry"),
    Rule("gateway.routes", f"{P}components.serving.gateway.routes[i]", "a route of an unknown tenant, to unknown, "
         "another tenant's or repeated endpoints, mixing served models, weights not adding up to 100",
         f"pulumi config set --path '{P}components.serving.gateway.routes[i].backends[j].endpoint' <endpoint>",
         gateway.routes, policy="tenant-isolation"),
    Rule("gateway.coverage", f"{P}components.serving.gateway.routes", "an endpoint no route reaches, routes "
         "sharing a hostname", f"pulumi config set --path '{P}components.serving.gateway.routes[i].backends[j]"
         ".endpoint' <endpoint>", gateway.coverage),
    # --- what the pack enforces that config already knows ---------------------------------------------------------
    Rule("pack.validation-evidence", f"{P}site.validationEvidence", "staging or prod without where validation "
         "evidence is kept", f"pulumi config set --path '{P}site.validationEvidence.path' <location>",
         _config(cross_field._evidence), policy="hardware-profile-and-evidence"),
    Rule("pack.tool-images", f"{P}components.serving.validation.<image>", "site-built tool images with latest or "
         "no tag, or from a registry not allowlisted", f"pulumi config set --path "
         f"'{P}components.serving.validation.<key>' <registry>/<image>:<tag>", _config(cross_field._tool_images),
         policy="image-references"),
    Rule("pack.validation-suite", f"{P}components.serving.validation.suite", "prod without the validation suite",
         f"pulumi config set --path '{P}components.serving.validation.suite' true",
         _config(cross_field._acceptance), policy="acceptance-evidence"),
    Rule("pack.time-slicing", f"{P}components.gpuOperator.timeSlicing", "time-sliced GPUs under prod LLM endpoints "
         "without validation evidence", f"pulumi config rm --path '{P}components.gpuOperator.timeSlicing'",
         _config(cross_field._time_slicing), policy="gpu-sharing"),
    Rule("pack.disaggregation-fabric", f"{P}endpoints[i].sizing", "disaggregated serving on a profile without an "
         "RDMA fabric or multi-node NVLink", "ncp sizing ... --serving-mode agg",
         lambda i: cross_field._disaggregation(i.config, i.profile, i.endpoints), needs_profile=True,
         policy="disaggregation-fabric"),
    Rule("prod.nccl-image", f"{P}components.serving.validation.ncclImage", "prod on an RDMA profile without the "
         "site's nccl-tests image pinned by digest (the NCCL readiness Job runs as root with IPC_LOCK on every GPU "
         "node)", f"pulumi config set --path '{P}components.serving.validation.ncclImage' "
         "'<registry>/nccl-tests:<version>@sha256:<digest>'", lambda i: cross_field._nccl_image(i.config, i.profile),
         needs_profile=True, policy="image-references"),
    Rule("prod.image-signatures", f"{P}components.tenancy.imageSignatures.publicKeys", "prod without the public "
         "key of the site's image signer (tenant images are verified by signature at admission)",
         f"pulumi config set --path '{P}components.tenancy.imageSignatures.publicKeys[0]' -- \"$(cat cosign.pub)\"",
         _config(cross_field._image_signatures), policy="image-references"),
    # --- RA rules config can know --------------------------------------------------------------------------------
    Rule("ra.platform-role-namespace", f"{P}components.tenancy.gatewayNamespace (and every platform-role key)",
         "a platform role's namespace set to a tenant's own namespace", "pulumi config set --path '<key>' "
         "<platform namespace>", _config(ra._role_namespace_problems), policy="tenant-isolation"),
    Rule("ra.break-fix-dry-run", f"{P}components.health.remediation", "break-fix in dry-run in prod without a "
         "recorded decision", f"pulumi config set --path '{P}components.health.remediation' enforce",
         _config(ra._dry_run_problems)),
    Rule("ra.partner-product-decision", f"{P}localDecisions", "a partner product (storage, gateway, certificate "
         "manager, metrics backend, registry) without a local decision of its kind in staging or prod",
         f"pulumi config set --path '{P}localDecisions[i].kind' <kind>",
         lambda i: ra._partner_product_problems(i.config, i.profile, i.endpoints), needs_profile=True,
         ra='Operations And Lifecycle Management: "treat unsupported feature gaps as explicit disposition items"'),
    Rule("ra.rack-scale-topology", f"{P}components.scheduling.topologyAware", "topology-aware placement off on a "
         "rack-scale NVLink site serving disaggregated endpoints",
         f"pulumi config set --path '{P}components.scheduling.topologyAware' true",
         lambda i: ra._rack_scale_problems(i.config, i.profile, i.endpoints), needs_profile=True,
         ra='Data Center Architecture: "Use rack-scale GPU domains for large models"'),
    Rule("local.chart-mirror-contents", f"{P}components.chartMirror", "a chart mirror that lacks a deployed chart "
         "at its pinned version", "ncp mirror --stack <site> --script mirror.sh",
         lambda i: local.mirror_problems(i.config.components.chart_mirror, i.mirror_charts), needs_profile=True,
         policy="charts-pinned"),
)

RULE_BY_ID = {rule.id: rule for rule in RULES}


def run_rules(stage: str, inputs: Any, rules: Sequence[Rule] = RULES) -> list[Problem]:
    """Every rule of the stage over the inputs, every problem collected (nothing stops at the first)."""
    assert stage in STAGES, stage
    return [problem for rule in rules if rule.stage == stage for problem in rule.run(inputs)]


__all__ = ["RULES", "RULE_BY_ID", "RawInputs", "Rule", "RuleInputs", "run_rules"]
