"""Benchmark acceptance with NVIDIA AIPerf: the Job's `aiperf profile` command line (ncp/plan/aiperf_args.py, which the
plan builds) and the check of its profile_export_aiperf.json against thresholds (plan.thresholds, `ncp acceptance`)."""
