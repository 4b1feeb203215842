"""kefu core: domain, decisions, storage. Imports no aiohttp, wechatpy or flask.

One package per concept, each importing only those below it (docs/architecture.md, the
import-linter contracts in pyproject.toml): cli > demo > conversation > agents | campaigns
> crm > sending > ops > faq > core.
"""

import os

# One BLAS thread per computing thread: a kefu process answers many questions at once on its
# own worker threads, and BLAS helper threads (numpy's OpenBLAS spins after each call) would
# only take the cores from them. Set before anything imports numpy; an explicit setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
