"""Test support: the fixture sites (synthetic.py) and the oracles that judge rendered artifacts with their upstream
engines (promtool.py: Prometheus rules; rule_tests.py: the rules' promtool tests; references.py: names resolved
against what exists)."""
