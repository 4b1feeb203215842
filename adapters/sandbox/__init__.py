"""The local WeChat stand-in: `app` plays api.weixin.qq.com / qyapi.weixin.qq.com, `client`
plays the WeChat server that posts callbacks to kefu. Tests, benchmarks and the demo use
both; nothing here talks to the real platform."""
