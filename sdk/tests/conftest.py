"""Unit-test fixtures; helpers live in sdk_testlib.py."""

from sdk_testlib import fake  # noqa: F401
