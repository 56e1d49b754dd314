"""The endpoint picker as its runner consumes it (#24 items 1, 2, 7): flags, configuration and API-server egress.

The runner is the one Dynamo 1.5's picker is built on, sigs.k8s.io/gateway-api-inference-extension at
v0.0.0-20260603065144-7c1f1994dbff (ai-dynamo/dynamo deploy/inference-gateway/epp/go.mod@2a6da14c); line numbers
below are of that module version (data/integration-points.yaml endpointPicker)."""
import pytest
import yaml

from ncp.plan.catalog import integration_points

NAMES = integration_points()
RUNNER = NAMES.endpoint_picker
# Shorthands the runner's flag set defines (controller-runtime zap flags and klog's -v); none is a pool flag.
SHORTHANDS = {"v"}


class FlagError(ValueError):
    pass


def parse_gnu_flags(argv: list[str], flags: set[str]) -> dict[str, str]:
    """spf13/pflag's parse of `--name value` / `--name=value` (cmd/epp/runner/runner.go:168-169 parses
    pflag.CommandLine, which exits on an error): a single dash starts a cluster of one-letter shorthands, so
    `-poolName` is the unknown shorthand `p`, and an unknown long flag is an error too."""
    parsed, rest = {}, list(argv)
    while rest:
        arg = rest.pop(0)
        if arg.startswith("--"):
            name, _, value = arg[2:].partition("=")
            if name not in flags:
                raise FlagError(f"unknown flag: --{name}")
            parsed[name] = value if value else rest.pop(0)
        elif arg.startswith("-") and len(arg) > 1:
            if arg[1] not in SHORTHANDS:
                raise FlagError(f"unknown shorthand flag: '{arg[1]}' in {arg}")
            rest.pop(0)
        else:
            raise FlagError(f"unexpected argument {arg!r}")
    return parsed


def _named(recording, kind: str, name: str) -> dict:
    return next(r.inputs for r in recording.resources
                if r.inputs.get("kind") == kind and r.inputs.get("metadata", {}).get("name") == name)


def _picker_pod(recording, endpoint: str) -> dict:
    deployment = next(r.inputs for r in recording.of_type("kubernetes:apps/v1:Deployment")
                      if r.inputs["metadata"]["name"] == f"{endpoint}-epp")
    return deployment["spec"]["template"]


def test_the_runner_refuses_the_old_single_dash_flags():
    """What the picker was given before: pflag reads `-poolName` as shorthand `p` and the runner exits."""
    old = ["-poolName", "chat-dense", "-poolNamespace", "tenant-acme-chat", "-grpcPort", "9002",
           "-grpcHealthPort", "9003"]
    try:
        parse_gnu_flags(old, set(RUNNER.flags))
    except FlagError as error:
        assert "unknown shorthand flag: 'p' in -poolName" in str(error)
    else:
        raise AssertionError("the single-dash flags must be refused")
    try:
        parse_gnu_flags(["--poolName", "x"], set(RUNNER.flags))
    except FlagError as error:
        assert "unknown flag: --poolName" in str(error)
    else:
        raise AssertionError("camelCase long flags must be refused")


def test_picker_args_name_its_pool_ports_and_config_as_the_runner_reads_them(prod):
    """pkg/epp/server/options.go:126-192: pool-name/-namespace/-group select the InferencePool the picker watches;
    grpc-port is what the pool's endpointPickerRef names; config-file is read at runner.go:515-521."""
    template = _picker_pod(prod, "chat-dense")
    [container] = template["spec"]["containers"]
    parsed = parse_gnu_flags(container["args"], set(RUNNER.flags))
    pool = _named(prod, "InferencePool", "chat-dense")
    assert parsed["pool-name"] == pool["metadata"]["name"]
    assert parsed["pool-namespace"] == pool["metadata"]["namespace"]
    assert parsed["pool-group"] == pool["apiVersion"].split("/")[0]
    assert int(parsed["grpc-port"]) == pool["spec"]["endpointPickerRef"]["port"]["number"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert int(parsed["grpc-health-port"]) == ports["grpc-health"] == container["readinessProbe"]["grpc"]["port"]
    assert int(parsed["metrics-port"]) == ports["metrics"]
    # the config file is a key of the ConfigMap mounted where the flag points
    [mount] = [m for m in container["volumeMounts"] if m["mountPath"] == RUNNER.config_mount_path]
    [volume] = [v for v in template["spec"]["volumes"] if v["name"] == mount["name"]]
    config_map = _named(prod, "ConfigMap", volume["configMap"]["name"])
    assert parsed["config-file"] == f"{mount['mountPath']}/{RUNNER.config_file}"
    assert RUNNER.config_file in config_map["data"]


def test_picker_config_loads_only_plugins_that_need_no_engine_metrics(prod):
    """Without --config-file the runner loads queue-scorer and kv-cache-utilization-scorer over a metrics data source
    (pkg/epp/config/loader/defaults.go:46-104): vLLM metric names the Dynamo frontends in the pool never export.
    The program's config names each plugin it references (loader validation) and an explicit data layer
    (defaults.go:292-301 keeps an explicit section as given) of one source that scrapes nothing: an empty one makes
    the runner exit at start (pkg/epp/datalayer/runtime.go:66-71; tests/test_twin_picker.py runs it)."""
    config = yaml.safe_load(_named(prod, "ConfigMap", "chat-dense-epp")["data"][RUNNER.config_file])
    assert (config["apiVersion"], config["kind"]) == (RUNNER.config_api_version, RUNNER.config_kind)
    declared = {plugin.get("name", plugin["type"]) for plugin in config["plugins"]}
    referenced = {ref["pluginRef"] for profile in config["schedulingProfiles"] for ref in profile["plugins"]}
    assert referenced | {config["saturationDetector"]["pluginRef"]} <= declared
    types = {plugin["type"] for plugin in config["plugins"]}
    assert not types & {"queue-scorer", "kv-cache-utilization-scorer", "metrics-data-source"}
    assert config["dataLayer"] == {"sources": [{"pluginRef": RUNNER.data_source}]}
    assert RUNNER.data_source in declared


def test_the_picker_may_reach_the_api_server(prod):
    """Tenant namespaces deny egress outside DNS, the namespace and the platform namespaces; the graph's API-server
    policy selects the graph's pods by `nvidia.com/dynamo-graph-deployment-name`, which the picker does not carry."""
    labels = _picker_pod(prod, "chat-dense")["metadata"]["labels"]
    graph_policy = _named(prod, "NetworkPolicy", "chat-dense-api-server-egress")["spec"]
    assert not graph_policy["podSelector"]["matchLabels"].items() <= labels.items(), "the graph's policy misses it"
    policy = _named(prod, "NetworkPolicy", "chat-dense-epp-api-server-egress")
    assert policy["metadata"]["namespace"] == "tenant-acme-chat"
    spec = policy["spec"]
    assert spec["podSelector"]["matchLabels"].items() <= labels.items()
    assert spec["policyTypes"] == ["Egress"] and spec["egress"] == graph_policy["egress"]


# --- the real runner (built by tools/e2e/bootstrap.sh, component epp) -----------------------------------------------

def _runner():
    """The epp binary from the bootstrap bin dir (NCP_EPP overrides), or skip with the reason."""
    import os
    import subprocess
    from pathlib import Path

    from tests.support.promtool import BOOTSTRAP
    override = os.environ.get("NCP_EPP")
    if override:
        return Path(override)
    result = subprocess.run(["bash", str(BOOTSTRAP), "--print-bin"], capture_output=True, text=True)
    path = Path(result.stdout.strip()) / "epp"
    if result.returncode != 0 or not os.access(path, os.X_OK):
        pytest.skip(f"the endpoint picker runner is not built (tools/e2e/bootstrap.sh): {result.stderr.strip()}")
    return path


UNREACHABLE_API = """apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: none, user: {token: none}}]
contexts: [{name: none, context: {cluster: none, user: none}}]
current-context: none
"""


def _run_runner(runner, args: list[str], tmp_path) -> tuple[int, str]:
    import subprocess
    (tmp_path / "kubeconfig").write_text(UNREACHABLE_API)
    result = subprocess.run([str(runner), *args], capture_output=True, text=True, timeout=60,
                            env={"KUBECONFIG": str(tmp_path / "kubeconfig"), "HOME": str(tmp_path)})
    return result.returncode, result.stdout + result.stderr


@pytest.mark.engine
def test_the_real_runner_parses_the_rendered_args_and_loads_the_rendered_config(prod, tmp_path):
    """The runner at the pinned version, given the rendered args (the config file mapped to a local copy of the
    rendered ConfigMap), gets past flag parsing and loads the configuration; it then
    stops only because no API server answers. The old single-dash args end it at flag parsing (exit 2)."""
    runner = _runner()
    template = _picker_pod(prod, "chat-dense")
    args = list(template["spec"]["containers"][0]["args"])
    config = tmp_path / RUNNER.config_file
    config.write_text(_named(prod, "ConfigMap", "chat-dense-epp")["data"][RUNNER.config_file])
    args[args.index("--config-file") + 1] = str(config)
    code, output = _run_runner(runner, args, tmp_path)
    assert "Flags processed" in output and "loaded configuration from file/text successfully" in output, output
    assert "Failed to create controller manager" in output and code != 0
    code, output = _run_runner(runner, ["-poolName", "chat-dense", "-poolNamespace", "tenant-acme-chat"], tmp_path)
    assert code == 2 and "Flags processed" not in output and "unknown shorthand flag: 'p' in -poolName" in output


def test_bootstrap_builds_the_runner_version_the_program_names():
    """tools/e2e/bootstrap.sh EPP_VERSION and data/integration-points.yaml endpointPicker.moduleVersion: change both."""
    import re

    from tests.support.promtool import BOOTSTRAP
    [version] = re.findall(r"^EPP_VERSION=(\S+)", BOOTSTRAP.read_text(), flags=re.MULTILINE)
    assert version == RUNNER.module_version
