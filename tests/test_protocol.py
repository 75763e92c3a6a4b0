"""The wire constants deployed agents depend on: every problem slug, spelled out and pinned."""

from __future__ import annotations

from vaultwatch.protocol import (
    PROBLEM_HEADER,
    PROBLEM_JSON,
    PROBLEM_TYPE_PREFIX,
    ProblemSlug,
    problem_type,
    slug_of_type,
)

# Agents in the field match these strings. Changing or removing one breaks them;
# a new problem adds a line here.
PINNED_SLUGS = {
    "agent-not-found",
    "agent-retired",
    "ambiguous-snapshot",
    "cancelled",
    "catalog",
    "catalog-schema",
    "catalog-unavailable",
    "certificate",
    "check-failed",
    "content-mismatch",
    "engine",
    "enrollment",
    "enrollment-token-expired",
    "enrollment-token-not-found",
    "enrollment-token-revoked",
    "enrollment-token-unknown",
    "enrollment-token-used",
    "integrity",
    "internal",
    "invalid-credential",
    "invalid-cursor",
    "invalid-object-name",
    "invalid-request",
    "invalid-store-u-r-l",
    "invalid-subset",
    "job-conflict",
    "key-slot",
    "lock-lost",
    "manifest-refused",
    "object-exists",
    "object-naming",
    "object-not-found",
    "path-not-found",
    "policy",
    "prune-refused",
    "repository-exists",
    "repository-locked",
    "repository-not-found",
    "restore-target-full",
    "snapshot-not-found",
    "snapshot-without-manifest",
    "store",
    "store-full",
    "store-permission",
    "store-unavailable",
    "tenant-deleted",
    "tenant-exists",
    "tenant-not-found",
    "tenant-scope",
    "tenant-state",
    "tenant-suspended",
    "unsafe-path",
    "upload-too-large",
    "user-exists",
    "validation",
    "wrong-passphrase",
}


def test_the_slug_list_is_pinned() -> None:
    defined = {slug.value for slug in ProblemSlug}
    assert defined - PINNED_SLUGS == set(), "new slugs: pin them here"
    assert PINNED_SLUGS - defined == set(), "slugs gone or renamed: deployed agents match them"


def test_wire_names_are_unchanged() -> None:
    assert PROBLEM_HEADER.lower() == "x-vaultwatch-problem"
    assert PROBLEM_JSON == "application/problem+json"
    assert PROBLEM_TYPE_PREFIX == "urn:vaultwatch:problem:"


def test_a_type_uri_and_its_slug_convert_both_ways() -> None:
    uri = problem_type(ProblemSlug.REPOSITORY_NOT_FOUND)
    assert uri == "urn:vaultwatch:problem:repository-not-found"
    assert slug_of_type(uri) == ProblemSlug.REPOSITORY_NOT_FOUND
    assert slug_of_type("about:blank") == "about:blank"
