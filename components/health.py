"""Health and break-fix layer: NVSentinel monitors plus the quarantine -> drain -> remediation pipeline, dry-run
outside prod, with its prerequisites (standalone DCGM from the GPU Operator, a datastore with generated
credentials)."""
from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.kube import Layer, helm_release, labels, one_of
from ncp.plan.break_fix import fault_quarantine_rule_sets, nvsentinel_modules
from ncp.plan.catalog import ChartPin, integration_points

DATASTORE_SECRET = "nvsentinel-datastore-credentials"


@dataclass(frozen=True)
class HealthArgs:
    """Arguments of Health: the NVSentinel release that watches GPU (and NIC) health and remediates nodes.

    Attributes:
        pin: the NVSentinel chart (compatibility matrix `nvsentinel`).
        namespace: the layer namespace the release installs into.
        dcgm_endpoint: host:port of the GPU Operator's standalone DCGM host engine.
        remediation: `dry-run` (report only) or `enforce` (cordon and drain faulty nodes).
        nic_monitor: whether the NIC health monitor runs (sites with an RDMA fabric).
        tenant_namespaces: the tenant namespaces whose pods a drain evicts.
        drain_timeout_seconds: how long a drain waits for pods to leave. Unit: seconds, a whole number of minutes (the
            plan checks it).
        scrape_interval: how often Prometheus scrapes NVSentinel (a Prometheus duration, e.g. `30s`).
        monitor_labels: the labels the site's Prometheus selects PodMonitors by.
        skip_await: whether Pulumi skips waiting for the release's resources to become ready.
        existing_datastore_secret: a datastore credentials Secret managed outside the program; None generates one here.
            Default: None.
    """

    pin: ChartPin
    namespace: k8s.core.v1.Namespace
    dcgm_endpoint: str
    remediation: str
    nic_monitor: bool
    tenant_namespaces: list[str]
    drain_timeout_seconds: int
    scrape_interval: str
    monitor_labels: dict[str, str]
    skip_await: bool
    existing_datastore_secret: Optional[str] = None


REMEDIATION_MODES = ("dry-run", "enforce")


def health_problems(args: HealthArgs) -> list[str]:
    """What NVSentinel cannot be configured with: an unknown mode, a drain timeout in part minutes, no DCGM port."""
    problems = one_of("remediation", args.remediation, REMEDIATION_MODES)
    if args.drain_timeout_seconds <= 0 or args.drain_timeout_seconds % 60:
        # node-drainer counts deleteAfterTimeoutMinutes (nvsentinel_values).
        problems.append(f"drain_timeout_seconds must be a positive whole number of minutes "
                        f"(got {args.drain_timeout_seconds})")
    host, _, port = args.dcgm_endpoint.rpartition(":")
    if not host or not port.isdigit():
        problems.append(f"dcgm_endpoint must be host:port (got {args.dcgm_endpoint!r})")
    return problems


# RA: Break-Fix Architecture: "detect, triage, remediate"
def nvsentinel_values(args: HealthArgs) -> dict:
    host, _, port = args.dcgm_endpoint.rpartition(":")
    enforce = args.remediation == "enforce"
    values = {
        "global": {
            "dryRun": not enforce,
            **{module: {"enabled": on} for module, on in nvsentinel_modules(args.nic_monitor).items()},
            # The janitor executes fault-remediation's maintenance requests (RebootNode, GPUReset, ...) and brings
            # their CRDs; without it enforced remediation only files requests (decision in the matrix entry).
            "janitor": {"enabled": enforce},
            "mongodbStore": {"enabled": True},
            "dcgm": {"enabled": True, "mode": "operator-service", "service": {"endpoint": host, "port": int(port)}},
        },
        "podMonitor": {"enabled": True, "interval": args.scrape_interval, "labels": dict(args.monitor_labels)},
        "mongodb-store": {"mongodb": {"auth": {"enabled": True,
                                               "existingSecret": args.existing_datastore_secret or DATASTORE_SECRET}}},
        # Every rule set cordons and taints; NVSentinel never returns a node to service (an admission policy
        # refuses its uncordon, components/break_fix.py): `ncp node return-to-service` does, on a pass.
        "fault-quarantine": {"ruleSets": fault_quarantine_rule_sets()},
        "node-drainer": {
            # DeleteAfterTimeout force-deletes a drained node's pods deleteAfterTimeoutMinutes after the health
            # event (default 60 when unset: NVIDIA/NVSentinel node-drainer/pkg/config/config.go
            # validateAndSetDefaults); evictionTimeoutInSeconds only bounds Immediate-mode evictions.
            "deleteAfterTimeoutMinutes": args.drain_timeout_seconds // 60,
            "userNamespaces": [{"name": ns, "mode": "DeleteAfterTimeout"} for ns in args.tenant_namespaces],
        },
    }
    if enforce:
        # No janitor-provider: its CSP clients (kind/aws/gcp/azure/oci) cannot reboot the site's nodes; the site's
        # out-of-band system executes the requests the janitor records (decision in the matrix entry).
        # RA: Break-Fix Architecture: "GPU reset, firmware remediation, repeated XID errors"
        values["janitor"] = {"config": {"manualMode": True}}
    return values


class Health(Layer):
    def __init__(self, name: str, args: HealthArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("Health", name, opts)
        self.refuse(health_problems(args))
        depends_on: list[pulumi.Resource] = [args.namespace]
        if args.existing_datastore_secret is None:
            depends_on.append(self._generated_credentials(name, args))
        self.values = nvsentinel_values(args)
        self.release = helm_release("nvsentinel", args.pin, self.values, args.namespace.metadata.name, self,
                                    args.skip_await, depends_on=depends_on)
        self.register_outputs({
            "release": self.release.name,
            "chartVersion": args.pin.version,
            "remediation": args.remediation,
            "datastoreSecret": args.existing_datastore_secret or DATASTORE_SECRET,
        })

    def _generated_credentials(self, name: str, args: HealthArgs) -> k8s.core.v1.Secret:
        keys = integration_points().nvsentinel_datastore
        child = self.child()
        root_password = random.RandomPassword(f"{name}-datastore-root-password", length=32, special=False, opts=child)
        replica_set_key = random.RandomPassword(f"{name}-datastore-replica-set-key", length=48, special=False,
                                                opts=child)
        return k8s.core.v1.Secret(
            f"{name}-datastore-credentials",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=DATASTORE_SECRET, namespace=args.namespace.metadata.name,
                                                labels=labels("health", DATASTORE_SECRET)),
            type="Opaque",
            # The keys the datastore subchart reads from auth.existingSecret.
            string_data={keys.root_password_key: root_password.result, keys.replica_set_key: replica_set_key.result},
            opts=child,
        )
