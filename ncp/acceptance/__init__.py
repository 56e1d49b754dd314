"""Benchmark acceptance with NVIDIA AIPerf: the Job's `aiperf profile` command line (acceptance.aiperf_args) and the
check of its profile_export_aiperf.json against thresholds (plan.thresholds, `ncp acceptance`)."""
