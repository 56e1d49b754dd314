"""ncp-inference: the plan (config and profiles -> a validated site plan), the composition that turns it into the
layer components (components/), and the tools around it, reached through one CLI (`ncp`, ncp/cli.py)."""
