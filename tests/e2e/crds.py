"""Install the CRDs of every custom resource the e2e stacks create into a local control plane: the charts' own
CRDs as the operators would bring them (real upstream copies read in place from ../shared/upstream, with the version
the program writes) and our stand-ins for kinds with no upstream copy. The stand-in charts of the chart mirror carry
no CRDs, so on the local control plane this is the documented step before `pulumi up` (docs/operator-guide.md,
"Against a cluster"):

    .venv/bin/python -m tests.e2e.crds --kubeconfig "$KUBECONFIG"

Exit codes: 0 installed, 2 bad input (no kubeconfig, ../shared/upstream absent), 3 internal error."""
import argparse
import sys
from pathlib import Path

import yaml

from tests.e2e.kube_api import KubeApi, only_version, without_descriptions

ROOT = Path(__file__).resolve().parents[2]
UPSTREAM = ROOT.parent / "shared" / "upstream"
# The DGD copy is Dynamo 1.5.0's (v1alpha1 + v1beta1 behind the operator's conversion webhook); our pinned 1.2.1 has
# only v1alpha1, so it is installed that way.
CRDS = {
    "kai-scheduler/scheduling.run.ai_queues.yaml": "v2",
    "prometheus-operator/monitoring.coreos.com_prometheusrules.yaml": "v1",
    "prometheus-operator/monitoring.coreos.com_podmonitors.yaml": "v1",
    "prometheus-operator/monitoring.coreos.com_servicemonitors.yaml": "v1",
    "dynamo/nvidia.com_dynamographdeployments.yaml": "v1alpha1",
    "network-operator/mellanox.com_nicclusterpolicies.yaml": "v1alpha1",
    "network-operator/005-nv-ipam.nvidia.com_ippools.yaml": "v1alpha1",
    "gateway-api-inference-extension/inference.networking.k8s.io_inferencepools.yaml": "v1",
}
OWN_CRDS = sorted((Path(__file__).parent / "crds").glob("*.yaml"))


def install(api: KubeApi, say=print) -> None:
    for upstream_path, version in CRDS.items():
        crd = yaml.safe_load((UPSTREAM / upstream_path).read_text())
        api.apply_crd(without_descriptions(only_version(crd, version)))
        say(f"crds: {crd['metadata']['name']} ({version}) established")
    for path in OWN_CRDS:
        crd = yaml.safe_load(path.read_text())
        api.apply_crd(crd)
        say(f"crds: {crd['metadata']['name']} (stand-in) established")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.e2e.crds", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kubeconfig", required=True, type=Path)
    args = parser.parse_args(argv)
    if not args.kubeconfig.is_file():
        print(f"{args.kubeconfig}: no such kubeconfig (eval \"$(tools/e2e/control-plane.sh env)\" sets KUBECONFIG)",
              file=sys.stderr)
        return 2
    if not UPSTREAM.is_dir():
        print(f"{UPSTREAM} is absent: the upstream CRDs are read from there", file=sys.stderr)
        return 2
    install(KubeApi(args.kubeconfig))
    return 0


if __name__ == "__main__":
    sys.exit(main())
