"""Acceptance evidence: one signed record per endpoint, Triton service or readiness run (JSON, Markdown, JUnit XML,
CTRF) with the environment and like-for-like key it ran under, and the index of signed, expiring entries the prod
promotion gates read (policies promotion-evidence and readiness-evidence)."""
