"""`python -m ncp` is the `ncp` console script, for a checkout where the package is not installed."""
from ncp.cli import entry_point

entry_point()
