"""Running kefu for real: the operator's side (issue 17).

Why a package: the doctor, backups, metrics and log plumbing are one concern — what an
operator needs to see kefu run, find out fast what is wrong, and never lose its data — and
each stays a small module here instead of growing `bot/`'s top level.
"""
