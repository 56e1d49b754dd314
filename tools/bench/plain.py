"""The plain pulumi-kubernetes program the benchmarks compare with: the program's custom resources registered again,
directly, with no components, plan or validation. A namespaced resource depends on its Namespace, as a plain program
writing `namespace=ns.metadata.name` would, so `up` creates them in a valid order.

Imports nothing of the project: the real-engine benchmark runs it as the `__main__` of a generated Pulumi project."""
import re


def register_plain(recorded: list[dict]) -> int:
    """Register each {"type", "name", "inputs"}; the number registered."""
    import pulumi
    import pulumi_kubernetes as k8s

    namespaces: dict = {}
    for registration in recorded:
        inputs = registration["inputs"]
        namespace = namespaces.get(inputs.get("namespace") or inputs.get("metadata", {}).get("namespace"))
        opts = pulumi.ResourceOptions(depends_on=[namespace] if namespace else None)
        if registration["type"] == "kubernetes:helm.sh/v3:Release":
            k8s.helm.v3.Release(registration["name"], chart=inputs["chart"], version=inputs["version"],
                                namespace=inputs["namespace"], values=inputs["values"],
                                skip_await=inputs.get("skipAwait"), opts=opts)
        elif registration["type"].startswith("random:"):
            import pulumi_random as random
            random.RandomPassword(registration["name"], length=inputs["length"], special=False, opts=opts)
        else:
            created = _custom(registration["name"], inputs, opts)
            if inputs["kind"] == "Namespace":
                namespaces[inputs["metadata"]["name"]] = created
    return len(recorded)


def _custom(name: str, inputs: dict, opts):
    import pulumi_kubernetes as k8s

    api_version, kind = inputs["apiVersion"], inputs["kind"]
    body = {_snake(k): v for k, v in inputs.items() if k not in ("apiVersion", "kind")}
    typed = _typed_class(api_version, kind)
    if typed is not None:
        return typed(name, opts=opts, **body)
    return k8s.apiextensions.CustomResource(name, api_version=api_version, kind=kind, opts=opts, **body)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _typed_class(api_version: str, kind: str):
    import pulumi_kubernetes as k8s

    group, _, version = api_version.rpartition("/")
    module_name = {"": "core", "rbac.authorization.k8s.io": "rbac"}.get(group, group.split(".")[0])
    module = getattr(getattr(k8s, module_name, None), version, None)
    return getattr(module, kind, None) if group == "" or group.endswith("k8s.io") else None
