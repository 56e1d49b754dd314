"""Acceptance evidence: one record per run (JSON + Markdown) with the environment it ran in, and the committed
index the prod promotion gate reads (policy promotion-evidence)."""
