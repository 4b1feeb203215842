"""kefu core: domain, decisions, storage. Imports no aiohttp, wechatpy or flask."""

import os

# One BLAS thread per computing thread: a kefu process answers many questions at once on its
# own worker threads, and BLAS helper threads (numpy's OpenBLAS spins after each call) would
# only take the cores from them. Set before anything imports numpy; an explicit setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
