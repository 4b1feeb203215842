"""kefu core: domain, decisions, storage. Imports no aiohttp, wechatpy or flask."""
