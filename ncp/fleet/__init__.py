"""A fleet of sites: every site stack checked together (`fleet status`) and upgraded in evidence-gated waves
(`fleet plan-upgrade`). The sites are the project's Pulumi.<stack>.yaml files, or those a fleet file names."""
