"""The ground floor: configuration, the database and its models, migrations, settings, the clock.

Every other package of `bot` may import it; it imports nothing of bot's other packages, and no
transport library (aiohttp, wechatpy, flask).
"""
