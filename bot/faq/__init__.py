"""The FAQ engine: normalization, matching and the live store of FAQs."""
