"""Site scaffolding: a new stack file from a hardware profile and a few answers, and a per-stack site checklist."""
