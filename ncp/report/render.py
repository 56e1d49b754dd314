"""The release review as Markdown."""
from ncp.ratrace.matrix import render as render_matrix


def _cell(value) -> str:
    return "-" if value in (None, "", [], {}) else str(value).replace("|", "/").replace("\n", " ")


def _table(header: list[str], rows: list[list]) -> list[str]:
    return (["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows])


def _pinned(component: dict) -> str:
    return f"{component['component']}: " + ", ".join(f"{k} {v}" for k, v in component["pinnedImages"].items())


def _evidence(entry, trust: str = "") -> str:
    if not entry:
        return "none recorded"
    key = entry.get("key") or entry  # schema 1 entries held the key's fields at the top
    return (f"{'PASSED' if entry['passed'] else 'FAILED'} run {entry['runId']} ({entry['createdAt']}), revision "
            f"{str(key.get('modelRevision'))[:12]}, driver {key.get('gpuDriver', '-')}, cache "
            f"{key.get('cacheState', '-')}, sizing sha256 {str(key.get('sizingSha256'))[:12]}: `{entry['record']}`"
            + (f"; {trust}" if trust else ""))


def _policies(name: str, result: dict) -> list[str]:
    lines = [f"### {name} (`{result['config']}`, {result['pack']})", ""]
    if not result["violations"]:
        return lines + ["No violations.", ""]
    return lines + [f"- [{v['level']}] {v['policy']}: {_cell(v['message'])}" for v in result["violations"]] + [""]


def _traceability(trace: dict) -> list[str]:
    if not trace.get("available", True):
        return [f"Not available: {trace['reason']}. This review does not show which RA requirement each part of the "
                "program traces to; regenerate it with the RA text (docs/operator-guide.md, \"The release review\").",
                ""]
    lines = [render_matrix(trace["rows"]), ""]
    if trace["danglingReferences"]:
        lines += ["References pointing at text the RA does not contain:", ""]
        lines += [f"- {problem}" for problem in trace["danglingReferences"]]
    return lines


def _tenant_rows(review: dict) -> list[str]:
    rows = _table(["Tenant", "Namespace", "Quota", "Limit", "Unit", "Dedicated nodes"],
                  [[t["name"], t["namespace"], t["gpuQuota"], t["gpuLimit"], t["unit"], t["nodePool"] or "-"]
                   for t in review["tenants"]])
    notes = [f"- {t['name']}: gpuQuota and gpuLimit count {t['unit']}, not GPUs (its GPUs are MIG-partitioned)."
             for t in review["tenants"] if t["unit"] != "GPUs"]
    return rows + ([""] + notes if notes else [])


def render(review: dict, picture: str) -> str:
    r = review
    lines = [f"# Release review: {r['site']} ({r['environment']}), stack `{r['stack']}`", "",
             f"Hardware profile {r['hardwareProfile']}, {r['gpuNodes']} GPU nodes, {r['gpus']}; "
             f"Kubernetes {r['kubernetesVersion']} "
             f"({'supported' if r['kubernetesSupported'] else 'NOT in the supported list'}).",
             "", f"![site layers, tenants and endpoints]({picture})", "",
             "## Tenants and GPU quotas", ""]
    lines += _tenant_rows(r)
    lines += ["", "## Components and versions vs the RA compatibility matrix", ""]
    lines += _table(["Component", "Layer", "Pinned", "RA matrix", "Deviation", "Source", "Deployed"],
                    [[c["displayName"], c["layer"], c["version"], c["raMatrix"], c["deviation"], c["source"],
                      {True: "yes", False: "no", None: "site-built image"}[c["deployed"]]] for c in r["components"]])
    lines += ["", "## Images: origin, digest, SBOM availability", ""]
    lines += _table(["Image", "Origin", "Tag", "Digest", "SBOM"],
                    [[i["repository"], i["origin"], i["tag"], i["digest"] or "**not pinned by digest**", i["sbom"]]
                     for i in r["images"]])
    pinned = [_pinned(c) for c in r["components"] if c["pinnedImages"] and c["kind"] == "chart"]
    lines += ["", "Chart operand images are the charts' own, at the pinned chart versions; versions the program pins "
              "explicitly: " + "; ".join(pinned), ""]
    lines += ["## Disposition items", ""]
    lines += [f"- {item}" for item in r["dispositionItems"]] or ["None."]
    lines += ["", "## Local implementation decisions", ""]
    lines += _table(["Decision", "Reason", "Recorded in"],
                    [[d["decision"], d["reason"], d["recordedIn"]] for d in r["localDecisions"]])
    lines += ["", "## Backend disposition per endpoint", ""]
    lines += _table(["Endpoint", "Model class", "Backend", "Environments", "Accepted gaps", "Blocking gaps",
                     "Rollback"],
                    [[d["endpoint"], d["modelClass"], d["backend"], ", ".join(d["environments"]),
                      "; ".join(d["acceptedGaps"]), "; ".join(d["blockingGaps"]), d["rollback"]]
                     for d in r["backendDisposition"]])
    lines += ["", "## Policy results", ""]
    for name, result in r["policies"].items():
        lines += _policies(name, result)
    lines += ["## Endpoints and latest evidence", ""]
    lines += _table(["Endpoint", "Tenant", "Mode", "GPUs", "Model", "Backend", "Sizing", "Latest evidence"],
                    [[e["endpoint"], e["tenant"], e["mode"], e["gpus"], e["model"], e["backend"], e["sizing"],
                      _evidence(e["latestEvidence"], e.get("evidenceTrust", ""))] for e in r["endpoints"]])
    lines += ["", "## RA traceability", ""] + _traceability(r["traceability"])
    return "\n".join(lines) + "\n"
