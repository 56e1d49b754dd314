"""The example stacks, validated as examples: what a site copies must be usable as it stands."""
import pytest
import yaml

from offline import check
from plan.catalog import ROOT
from tests.conftest import EXAMPLE_STACKS

EXAMPLES = sorted(path.name for path in ROOT.glob("Pulumi.*.yaml"))


@pytest.mark.parametrize("name", EXAMPLES)
def test_stack_selection_leaves_the_example_untouched(name):
    """`pulumi stack select --create <stack>` writes an encryptionsalt into a stack file that has none (seen with the
    engine e2e/bootstrap.sh builds: it appended one and re-wrapped the comments of Pulumi.lab.yaml); with the salt
    committed, selecting the stack leaves the tracked file as it is."""
    document = yaml.safe_load((ROOT / name).read_text())
    assert str(document.get("encryptionsalt", "")).startswith("v1:"), \
        f"{name}: commit its encryptionsalt (run `pulumi stack select --create` once and commit what it adds)"


@pytest.mark.parametrize("stack", EXAMPLE_STACKS)
def test_example_validates_composes_and_passes_its_pack(stack, example_stacks, capsys):
    """The example itself (not the frozen copy the other tests read): valid config, composed under mocks, no
    mandatory violation under its environment's pack config."""
    assert check.main(["--stack", stack]) == 0, capsys.readouterr()
