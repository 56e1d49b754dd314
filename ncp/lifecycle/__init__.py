"""Lifecycle: upgrade and rollback plans between two revisions of the compatibility matrix."""
