"""The error every campaign refusal raises (wrong state, unknown target, content that cannot go).

Why apart: the targets, the checks, the runs and the group campaigns (group_messages.py, which
the targets and the runs call) all raise it; kept at the bottom of the package so none of them
has to import another only for the exception.
"""

from __future__ import annotations


class CampaignError(Exception):
    """A campaign cannot do what was asked (wrong state, unknown target)."""
