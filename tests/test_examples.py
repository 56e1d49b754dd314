"""Every stack file of the project, validated as the site's CI does (`ncp check --all`): what a site
commits must be usable as it stands, and a site's typo turns the suite red with the file, key and fix."""
import pytest

from ncp.offline import site_ci
from ncp.offline.policy_check import PACK_DIR
from ncp.plan.catalog import ROOT
from tests.conftest import EXAMPLE_STACKS

STACKS = sorted(path.name[len("Pulumi."):-len(".yaml")] for path in ROOT.glob("Pulumi.*.yaml"))


@pytest.mark.parametrize("stack", STACKS)
def test_stack_file_validates_composes_and_passes_its_pack(stack, example_stacks):
    """The stack file itself (not a frozen copy): valid config, composed under mocks, no mandatory violation under
    its environment's pack config, and its secrets readable (passphrase salt or KMS key)."""
    result = site_ci.check_stack(stack, PACK_DIR, None)
    assert result.status == 0, "\n".join([f"Pulumi.{stack}.yaml: {result.line}", *result.details])


@pytest.mark.parametrize("stack", STACKS)
def test_stack_selection_leaves_the_stack_file_untouched(stack, example_stacks):
    """`pulumi stack select --create <stack>` writes an encryptionsalt into a stack file that has neither a salt nor a
    KMS key (seen with the engine tools/e2e/bootstrap.sh builds: it appended one and re-wrapped the comments of
    Pulumi.lab.yaml); with the salt or key committed, selecting the stack leaves the tracked file as it is."""
    problem, note = site_ci.secrets_problem(stack)
    assert problem is None, problem
    # The project's own examples are selected by the guide's walk (tests/e2e/test_readme_path.py checks `git status`);
    # a site's new stack may wait for its first `pulumi stack select` to get its salt.
    assert note is None or stack not in (*EXAMPLE_STACKS, "e2e"), note


def test_every_stack_file_is_checked():
    assert site_ci.every_stack() == STACKS and {"lab", "prod"} <= set(STACKS)
