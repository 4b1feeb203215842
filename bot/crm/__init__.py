"""The CRM: orders from the shop system, member levels, the public and private pools,
segments, and a customer's export and erasure.

Why a package: each of these is one concept with its own rules, but they share the
customer row (totals, level, owner) and must agree on how it changes.
"""
