"""Live-cluster preflight before `pulumi up`: what the stack needs from the cluster, checked through its API."""
