"""A site stack that starts from a shared base, and a site's version pin for the length of an upgrade wave.

    ncp-inference:base: fleet/bases/partner-h200.yaml      # a file of the project (or an absolute path)
    ncp-inference:versionPins:
      - component: gpuOperator            # a chart of data/compatibility-matrix.yaml
        version: v25.10.0                 # the chart version this site keeps while the wave runs
        images: {driver: "580.95.05"}     # optional: image pins of that chart kept too
        wave: gpu-operator-v26.7          # the upgrade wave it holds the site back from
        until: "2026-12-20"               # the wave's deadline: prod refuses the pin after it
        reason: partner maintenance window on 2026-12-18

A base is a stack file's `config:` (the same `ncp-inference:*` keys) that holds what ten sites share: the profile
defaults, components settings, and `ncp-inference:tenantDefaults`, the settings every tenant starts from. The site's
own keys are merged over the base's: mappings key by key, anything else (a list, a value) replaces the base's. Each
tenant is then `tenantDefaults` with the tenant's own keys merged over it. A base holds no secrets, no pins and no
other base (one level, so what a site runs is two files to read). A stack without `base` is read as before.

A pin replaces the matrix's version of one chart in this site's plan (and so in its baseline record and outputs);
`ncp fleet status` lists it. In prod a pin is refused once its `until` has passed: the site returns to the matrix.
"""
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Optional

from ncp.plan.catalog import ROOT, CompatibilityMatrix
from ncp.plan.errors import ConfigError, Problem, manual_edit, rm_command, set_command
from ncp.plan.names import BASE_KEY, PINS_KEY, PROJECT, TENANT_DEFAULTS_KEY

PIN_FIELDS = {"component", "version", "images", "wave", "until", "reason"}
REQUIRED_PIN_FIELDS = ("component", "version", "wave", "until", "reason")


@dataclass(frozen=True)
class VersionPin:
    component: str
    version: str
    wave: str
    until: datetime
    reason: str
    images: tuple[tuple[str, str], ...] = ()

    def expired(self, now: Optional[datetime] = None) -> bool:
        return (now or datetime.now(timezone.utc)) > self.until

    def as_dict(self) -> dict:
        return {"component": self.component, "version": self.version, "images": dict(self.images),
                "wave": self.wave, "until": self.until.isoformat(), "reason": self.reason}


@dataclass(frozen=True)
class LayeredConfig:
    raw: dict[str, Any]
    base: Optional[str]
    pins: tuple[VersionPin, ...]


def deep_merge(base: Any, override: Any) -> Any:
    """`override` over `base`: mappings key by key (recursively), anything else replaces."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = deep_merge(base[key], value) if key in base else value
        return merged
    return override


def _base_path(named: str, source: str) -> Path:
    """A relative base is beside the stack file: the project root for a stack the engine runs (`source` is then
    Pulumi.<stack>.yaml), the stack file's folder for one read by path (a fleet's sites)."""
    path = Path(named).expanduser()
    folder = Path(source).parent if Path(source).is_absolute() else ROOT
    return path if path.is_absolute() else folder / path


def _read_base(named: Any, source: str) -> tuple[dict[str, Any], list[Problem]]:
    key = f"{source}: {PROJECT}:{BASE_KEY}"
    if not isinstance(named, str) or not named.strip():
        return {}, [Problem(key, f"is {named!r}, not a file name",
                            f"name the shared base file, e.g. pulumi config set {PROJECT}:{BASE_KEY} "
                            "fleet/bases/<name>.yaml", rule="site.base")]
    path = _base_path(named, source)
    if not path.is_file():
        return {}, [Problem(key, f"names {named}, which does not exist ({path})",
                            manual_edit(named, "the whole file", "create the base (a stack file's `config:` of "
                                        "shared keys)")
                            + f", or correct the path: {set_command(f'{PROJECT}:{BASE_KEY}', '<path>')}",
                            rule="site.base")]
    from ncp.plan.sources import config_of_document  # sources builds plans: imported here, where it is needed

    raw, secrets = config_of_document(path.read_bytes(), named)
    problems = []
    for forbidden, why in ((BASE_KEY, "a base does not name another base (one level)"),
                           (PINS_KEY, "version pins are a site's own, for the length of a wave")):
        if forbidden in raw:
            problems.append(Problem(f"{named}: {PROJECT}:{forbidden}", f"is refused in a base: {why}",
                                    manual_edit(named, f"{PROJECT}:{forbidden}",
                                                f"move it into the site's stack file ({source})"), rule="site.base"))
    for secret in sorted(secrets):
        problems.append(Problem(f"{named}: {PROJECT}:{secret}",
                                "is a secure value: a base holds no secrets (each stack has its own encryption key)",
                                f"set it in each site: pulumi config set --secret {PROJECT}:{secret} <value>",
                                rule="site.base"))
    return raw, problems


def _with_tenant_defaults(raw: dict[str, Any], source: str) -> tuple[dict[str, Any], list[Problem]]:
    defaults = raw.pop(TENANT_DEFAULTS_KEY, None)
    if defaults is None:
        return raw, []
    if not isinstance(defaults, dict):
        return raw, [Problem(f"{source}: {PROJECT}:{TENANT_DEFAULTS_KEY}",
                             f"is a {type(defaults).__name__}, not a mapping of tenant settings",
                             manual_edit(source, f"{PROJECT}:{TENANT_DEFAULTS_KEY}", "write it as the keys every "
                                         "tenant shares, e.g. {cpuQuota: \"16\", admins: [ops]}"),
                                         rule="site.tenant-defaults")]
    tenants = raw.get("tenants")
    if isinstance(tenants, list):
        raw["tenants"] = [deep_merge(defaults, tenant) if isinstance(tenant, dict) else tenant for tenant in tenants]
    return raw, []


def _until(value: Any) -> Optional[datetime]:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
    if isinstance(value, str):
        try:
            return _until(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return None
    return None


def _pin(index: int, entry: Any, matrix: CompatibilityMatrix, where: str) -> tuple[Optional[VersionPin],
                                                                                   list[Problem]]:
    at, key_path = f"{where}[{index}]", f"{PROJECT}:{PINS_KEY}[{index}]"
    if not isinstance(entry, dict):
        return None, [Problem(at, f"is a {type(entry).__name__}, not a pin",
                              f"{set_command(f'{key_path}.component', '<chart>')}, then version, wave, until and "
                              "reason the same way", rule="site.version-pins")]
    problems = [Problem(f"{at}.{key}", "is not a pin field",
                        f"{rm_command(f'{key_path}.{key}')} (pin fields: {', '.join(sorted(PIN_FIELDS))})",
                        rule="site.version-pins")
                for key in sorted(set(entry) - PIN_FIELDS)]
    problems += [Problem(f"{at}.{key}", "is required (a pin says what it keeps, for which wave, until when and why)",
                         set_command(f"{key_path}.{key}", "<value>"), rule="site.version-pins")
                 for key in REQUIRED_PIN_FIELDS if not str(entry.get(key) or "").strip()]
    component = entry.get("component")
    if component and component not in matrix.components:
        problems.append(Problem(f"{at}.component", f"{component!r} is not a chart of the compatibility matrix",
                                f"{set_command(f'{key_path}.component', '<chart>')} "
                                f"(one of: {', '.join(sorted(matrix.components))})", rule="site.version-pins"))
    until = _until(entry.get("until"))
    if entry.get("until") and until is None:
        problems.append(Problem(f"{at}.until", f"{entry.get('until')!r} is not a date",
                                set_command(f"{key_path}.until", "YYYY-MM-DD"), rule="site.version-pins"))
    images = entry.get("images") or {}
    if not isinstance(images, dict) or not all(isinstance(v, str) for v in images.values()):
        problems.append(Problem(f"{at}.images", "is not a mapping of image name to version",
                                set_command(f"{key_path}.images.<image>", "<version>"), rule="site.version-pins"))
    elif component in matrix.components:
        unknown = sorted(set(images) - set(matrix.pin(component).images))
        problems += [Problem(f"{at}.images.{name}", f"{component} pins no image {name!r}",
                             f"{rm_command(f'{key_path}.images.{name}')} (images of {component}: "
                             f"{', '.join(sorted(matrix.pin(component).images)) or 'none'})", rule="site.version-pins")
                     for name in unknown]
    if problems or until is None:
        return None, problems
    return VersionPin(str(component), str(entry["version"]), str(entry["wave"]), until, str(entry["reason"]),
                      tuple(sorted(images.items()))), []


def read_pins(raw: Mapping[str, Any], source: str, matrix: CompatibilityMatrix,
              now: Optional[datetime] = None) -> tuple[tuple[VersionPin, ...], list[Problem]]:
    """The site's version pins, or the problems with them (prod refuses a pin past its wave's deadline)."""
    entries = raw.get(PINS_KEY)
    where = f"{source}: {PROJECT}:{PINS_KEY}"
    if entries is None:
        return (), []
    if not isinstance(entries, list):
        return (), [Problem(where, f"is a {type(entries).__name__}, not a list of pins",
                            manual_edit(source, f"{PROJECT}:{PINS_KEY}",
                                        "write a list of {component, version, wave, until, reason}"),
                                        rule="site.version-pins")]
    pins, problems = [], []
    for index, entry in enumerate(entries):
        pin, found = _pin(index, entry, matrix, where)
        problems += found
        if pin is not None:
            pins.append(pin)
    seen = [pin.component for pin in pins]
    problems += [Problem(where, f"pins {name} twice", manual_edit(source, f"{PROJECT}:{PINS_KEY}",
                                                                  "keep one pin per chart"), rule="site.version-pins")
                 for name in sorted({n for n in seen if seen.count(n) > 1})]
    site = raw.get("site")
    if isinstance(site, dict) and site.get("environment") == "prod":
        problems += [Problem(f"{where}[{seen.index(pin.component)}].until",
                             f"the pin of {pin.component} {pin.version} (wave {pin.wave}) ended {pin.until:%Y-%m-%d}: "
                             "prod runs the matrix once the wave's deadline has passed",
                             f"remove the pin (the site upgrades with its wave): "
                             f"{rm_command(f'{PROJECT}:{PINS_KEY}[{seen.index(pin.component)}]')}, or, with the wave "
                             f"owner's approval, move the deadline: "
                             f"{set_command(f'{PROJECT}:{PINS_KEY}[{seen.index(pin.component)}].until', 'YYYY-MM-DD')}",
                             rule="site.version-pins")
                     for pin in pins if pin.expired(now)]
    return tuple(pins), problems


def pinned_matrix(matrix: CompatibilityMatrix, pins: tuple[VersionPin, ...]) -> CompatibilityMatrix:
    """The matrix this site runs: each pinned chart at its pinned version (and images)."""
    if not pins:
        return matrix
    components = dict(matrix.components)
    for pin in pins:
        chart = components[pin.component]
        components[pin.component] = chart.model_copy(update={"version": pin.version,
                                                              "images": {**chart.images, **dict(pin.images)}})
    return matrix.model_copy(update={"components": components})


def _over_base(raw: Mapping[str, Any], source: str) -> tuple[dict[str, Any], Any, list[Problem]]:
    own = dict(raw)
    named = own.pop(BASE_KEY, None)
    problems: list[Problem]
    if named is None:
        merged, problems = own, []
    else:
        base, problems = _read_base(named, source)
        merged = deep_merge(base, own)
    merged, tenant_problems = _with_tenant_defaults(dict(merged), source)
    return merged, named, problems + tenant_problems


def resolved_config(raw: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The site's config as one stack file: base and tenant defaults merged in, pins kept (for a program run
    where the base file is not beside the program, e.g. a fleet's site composed offline)."""
    merged, _, problems = _over_base(raw, source)
    if problems:
        raise ConfigError(source, problems)
    return merged


def layer_site(raw: Mapping[str, Any], source: str, matrix: CompatibilityMatrix) -> LayeredConfig:
    """The site's config over its base (if any), tenant defaults applied, pins read; a ConfigError names the file
    and key of each problem."""
    merged, named, problems = _over_base(raw, source)
    pins, pin_problems = read_pins(merged, source, matrix)
    merged.pop(PINS_KEY, None)
    problems += pin_problems
    if problems:
        raise ConfigError(source, problems)
    return LayeredConfig(merged, named if isinstance(named, str) else None, pins)
