"""IM channels and the aiohttp webhook server. Adapters convert; the core decides."""
