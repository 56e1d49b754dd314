"""The project's read model: the Pulumi program run under mocks (no engine, no cluster), recording every resource
it registers with its inputs (recorder.py), and those resources as Kubernetes manifests (manifests.py). Every tool
that needs to know what a stack deploys reads it here: ncp check/diff, preflight, evidence, scaffold's checklist and
mirror, the release review, the upgrade plan, the serving twin."""
