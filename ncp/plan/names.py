"""The project's own names, each in one place: the config namespace, the tenant namespace rule, the label and
annotation keys the program puts on objects, and where models and benchmark results live in a tenant's pods."""

PROJECT = "ncp-inference"  # the Pulumi project: config keys are `ncp-inference:<key>`
LABEL_PREFIX = f"{PROJECT}.io/"

TENANT_NAMESPACE_PREFIX = "tenant-"


def tenant_namespace(tenant: str) -> str:
    """A tenant's namespace; its KAI leaf queue has the same name."""
    return TENANT_NAMESPACE_PREFIX + tenant


# One key for the tenant's label on its objects and on its dedicated nodes, and for the taint those nodes carry.
TENANT_KEY = f"{LABEL_PREFIX}tenant"
# On what the e2e stand-in charts (tests/e2e/charts) render: how a chart mirror of stand-ins is recognised.
STAND_IN_CHART_LABEL = f"{LABEL_PREFIX}stand-in-chart"
ENDPOINT_LABEL = f"{LABEL_PREFIX}endpoint"
# Every object the program creates carries PART_OF_LABEL=PROJECT (components.kube.labels): in a tenant namespace it
# marks what is platform-owned, which admission keeps read-only to tenants and out of their hands.
PART_OF_LABEL = "app.kubernetes.io/part-of"
LAYER_LABEL = f"{LABEL_PREFIX}layer"
RUNBOOKS = "docs/runbooks"  # every alert's runbook_url: <RUNBOOKS>/<its layer label>.md#<alert name, lower case>


def runbook_url(layer: str, alert: str) -> str:
    """The runbook section of an alert: one file per owning layer (the alert's `layer` label), one heading per alert
    (a Markdown heading `## NcpX` is the anchor `#ncpx`)."""
    return f"{RUNBOOKS}/{layer}.md#{alert.lower()}"

STORAGE_TIER_LABEL = f"{LABEL_PREFIX}storage-tier"
# Series labels the program's PodMonitors write and its rules and dashboards select on (target labels win over an
# exporter's own `model`/`endpoint`, which Prometheus keeps as exported_model/exported_endpoint).
SERIES_TENANT, SERIES_ENDPOINT, SERIES_MODEL, SERIES_COMPONENT_TYPE = "tenant", "endpoint", "model", "component_type"
# What runs in a serving pod, as pod labels the program sets on every service of a graph and the PodMonitor copies
# into series labels (the backend engine and the runtime image's release): a rollout shows both versions side by side.
BACKEND_LABEL, RUNTIME_VERSION_LABEL = f"{LABEL_PREFIX}backend", f"{LABEL_PREFIX}runtime-version"
SERIES_BACKEND, SERIES_RUNTIME_VERSION = "backend", "runtime_version"
# Prometheus target labels that attribute a series to a pod (the scrape's namespace, pod and node): GPU usage per
# tenant is summed by them.
TARGET_LABELS = ("namespace", "pod", "node")
# Annotations.
MODEL_SOURCE = f"{LABEL_PREFIX}model-source"
MODEL_REVISION = f"{LABEL_PREFIX}model-revision"
POD_SECURITY_REASON = f"{LABEL_PREFIX}pod-security-reason"  # why a tenant namespace is not restricted
# What admission lets pass in a tenant namespace, on the namespace (tenants cannot change it): the tenant's groups,
# the node paths and capabilities of its recorded Pod Security exception, the secondary networks it may attach to.
TENANT_GROUPS = f"{LABEL_PREFIX}tenant-groups"
ALLOWED_HOST_PATHS = f"{LABEL_PREFIX}allowed-host-paths"
ALLOWED_CAPABILITIES = f"{LABEL_PREFIX}allowed-capabilities"
ALLOWED_NETWORKS = f"{LABEL_PREFIX}allowed-networks"
# The platform's workloads in the namespace (endpoints, inference services, ModelExpress): their pods, named after
# them, run with the platform's network reach and accounts, so admission refuses tenants exec and attach into them.
PLATFORM_WORKLOADS = f"{LABEL_PREFIX}platform-workloads"
MODEL_EXPRESS = "modelexpress"  # a tenant's ModelExpress server: its Deployment, Service and pods' name prefix
SIZING_ANNOTATION = f"{LABEL_PREFIX}sizing"  # the endpoint's sizing file
# the like-for-like key evidence must match (ncp/plan/evidence_key.py), on each served resource
EVIDENCE_KEY_ANNOTATION = f"{LABEL_PREFIX}evidence-key"
THRESHOLDS_ANNOTATION = f"{LABEL_PREFIX}acceptance-thresholds"  # on a benchmark Job, for `ncp acceptance`
SUITE_VERSION_ANNOTATION = f"{LABEL_PREFIX}suite-version"
ACCEPTANCE_RUN_LABEL = f"{LABEL_PREFIX}acceptance-run"  # on a Job run from a suspended benchmark or suite Job
RUN_OF_ANNOTATION = f"{LABEL_PREFIX}run-of"  # the suspended Job a run copies

# The readiness Jobs (RDMA profiles): what each measures (label value nccl or storage), their names, and the Secret
# that holds a run's ssh key for the NCCL test's mpirun (made and deleted by `ncp evidence readiness-run`).
READINESS_LABEL = f"{LABEL_PREFIX}readiness"
NCCL_JOB = "nccl-tests"
NCCL_SSH_SECRET = f"{NCCL_JOB}-ssh"


def fio_job(tier: str) -> str:
    """The storage readiness Job of a tier (camelCase, as the stack config writes it)."""
    return f"fio-{tier.lower()}"


# The claims every serving tenant has, and where its pods mount the model-artifacts claim.
MODEL_CLAIM = "model-artifacts"
BENCHMARK_CLAIM = "benchmark-output"
MODELS_MOUNT = "/models"
# A site's files live together under sites/<stack>/ (the stack's name picks the folder): its sizing files, release
# reviews, and its evidence index and trusted public keys. The policy pack's defaults for the two evidence files are
# the same templates (policy/ncp_guardrails/evidence_index.py), with {stack} filled from the resources' URNs.
SITE_DIR = "sites/{stack}"
EVIDENCE_INDEX = SITE_DIR + "/evidence/index.yaml"
TRUSTED_KEYS = SITE_DIR + "/evidence/trusted-keys.yaml"


def site_file(template: str, stack: str) -> str:
    """A site file's project-relative path for one stack (EVIDENCE_INDEX, TRUSTED_KEYS)."""
    return template.format(stack=stack)


# Where the acceptance benchmark Jobs mount the benchmark-output claim (one artifact directory per endpoint), and the
# export AIPerf writes there, which the judge reads (ncp/acceptance/check.py).
RESULTS_MOUNT = "/results"
AIPERF_EXPORT = "profile_export_aiperf.json"
# The Triton ensemble's input when DALI preprocesses: an encoded image (components/serving/triton_repository.py).
ENSEMBLE_INPUT = "IMAGE"


def model_path(model_name: str, revision: str) -> str:
    """Where a staged model lives on the model-artifacts claim: one directory per model and revision."""
    return f"{MODELS_MOUNT}/{model_name}/{revision}"


# The stack keys that layer a site (ncp/plan/site_base.py): a shared base file, version pins kept off the matrix for a
# wave, and the settings every tenant shares.
BASE_KEY, PINS_KEY, TENANT_DEFAULTS_KEY = "base", "versionPins", "tenantDefaults"
