"""The offline commands: `ncp check` (config, plan and the policy pack on every stack, the site CI with the version
bump checks) and `ncp diff` (what a change does), run on the read model (ncp.readmodel) with no engine and no
cluster."""
