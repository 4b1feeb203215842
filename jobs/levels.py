"""Member level recompute (VIP1–VIP4 by spend or order count; thresholds in the admin).

Why a job: thresholds change in the admin and orders arrive all day; a nightly pass brings
every customer's level in line. The computation is the CRM's (`bot.crm.levels`); this only
schedules it.
"""

from __future__ import annotations


def recompute_levels() -> int:
    from bot.crm.levels import recompute_all

    return recompute_all()
