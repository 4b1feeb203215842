/* The web chat page (adapters/static/chat.html): a file served by the webhook server, not an
   inline script, so the page's Content-Security-Policy can refuse every inline script (an
   injected one included). The channel comes from the page's <html data-channel>. Whatever the
   server or the customer wrote is shown with textContent, never as HTML.
   On load the page shows the conversation so far (both directions: a reload loses nothing).
   An agent's own web identity (the server says role "agent") gets no customer controls: no
   转人工 button, no welcome or question cards, since what an agent types goes to their customer. */
(function () {
  "use strict";
  var CHANNEL = document.documentElement.getAttribute("data-channel");
  var base = "/api/web/" + encodeURIComponent(CHANNEL);
  var log = document.getElementById("log");
  var seen = {};
  var lastId = 0;
  var session = null;
  var welcomed = false;
  var role = "customer";
  var sent = {};  // msg_ids this page sent: already shown when the poll returns them
  var storeKey = "kefu-session-" + CHANNEL;
  var params = new URLSearchParams(location.hash.slice(1));

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;  // always text: never HTML from the server
    return node;
  }

  function show(who, text, cards, mine) {
    var row = el("div", "row" + (mine ? " me" : ""));
    var bubble = el("div", "bubble");
    if (!mine && who) bubble.appendChild(el("div", "who", who));
    bubble.appendChild(el("div", "text", text));
    if (cards && cards.length && role !== "agent") {
      var box = el("div", "cards");
      cards.forEach(function (c, i) {
        var b = el("button", "card", (i + 1) + ". " + c.title);
        b.type = "button";
        b.addEventListener("click", function () { send(c.title); });
        box.appendChild(b);
      });
      bubble.appendChild(box);
    }
    row.appendChild(bubble);
    log.appendChild(row);
    log.scrollTop = log.scrollHeight;
  }

  function authorName(a) { return a === "agent" ? "客服" : (a === "system" ? "系统" : "小蜜"); }

  function showStored(m) {
    if (!remember(m)) return;
    if (m.direction === "in") {
      if (m.msg_id && sent[m.msg_id]) return;
      show("", m.text, [], true);
    } else {
      show(authorName(m.author), m.text, m.cards, false);
    }
  }

  function pollUrl(after) {
    return base + "/messages?user_id=" + encodeURIComponent(session.user_id) + "&token=" + encodeURIComponent(session.token) + "&after=" + after;
  }

  function remember(m) {
    if (m.id && seen[m.id]) return false;
    if (m.id) { seen[m.id] = true; if (m.id > lastId) lastId = m.id; }
    return true;
  }

  async function ensureSession() {
    if (params.get("user_id") && params.get("token")) {
      session = { user_id: params.get("user_id"), token: params.get("token") };
      return;
    }
    try { session = JSON.parse(localStorage.getItem(storeKey) || "null"); } catch (e) { session = null; }
    if (!session) {
      var r = await fetch(base + "/session", { method: "POST" });
      session = await r.json();
      localStorage.setItem(storeKey, JSON.stringify(session));
    }
  }

  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return Date.now().toString(36) + Math.random().toString(36).slice(2);
  }

  async function send(text) {
    text = (text || "").trim();
    if (!text) return;
    show("", text, [], true);
    var body = { user_id: session.user_id, token: session.token, msg_id: uuid(), text: text, welcomed: welcomed };
    sent[body.msg_id] = true;
    for (var attempt = 0; attempt < 3; attempt++) {
      try {
        var r = await fetch(base + "/messages", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
        var data = await r.json();
        if (!r.ok) { show("系统", data.error || "发送失败", [], false); return; }
        data.replies.forEach(function (m) { if (remember(m)) show("小蜜", m.text, m.cards, false); });
        return;
      } catch (e) {
        await new Promise(function (res) { setTimeout(res, 1000); });  // same msg_id: the server dedups
      }
    }
    show("系统", "网络异常，请稍后再试", [], false);
  }

  async function poll() {  // a waiting poll: the server answers as soon as something is new (or after 25 s)
    var again = 2000;
    try {
      var r = await fetch(pollUrl(lastId) + "&wait=25");
      if (r.ok) {
        var data = await r.json();
        data.messages.forEach(showStored);
        again = 100;
      }
    } catch (e) { /* offline: try again */ }
    setTimeout(poll, again);
  }

  document.getElementById("form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var input = document.getElementById("text");
    var text = input.value;
    input.value = "";
    send(text);
  });
  document.querySelectorAll("[data-say]").forEach(function (b) {
    b.addEventListener("click", function () { send(b.getAttribute("data-say")); });
  });

  function asAgent() {
    role = "agent";
    document.documentElement.setAttribute("data-role", "agent");
    document.querySelectorAll(".quick").forEach(function (q) { q.hidden = true; });
    document.querySelector("header").textContent = "客服账号 · 顾客消息会转到这里";
    show("系统", "这是客服的聊天页：您发出的文字会发给当前会话的顾客。发送 /help 查看命令；网页工作台在管理后台的「工作台」。", [], false);
  }

  (async function start() {
    await ensureSession();
    var history = [];
    try {
      var first = await fetch(pollUrl(0));
      if (first.ok) {
        var d = await first.json();
        history = d.messages;
        if (d.role === "agent") asAgent();
      }
    } catch (e) { /* offline: the poll retries */ }
    if (role !== "agent" && !history.length) {
      try {
        var w = await (await fetch(base + "/welcome")).json();
        show("小蜜", w.text, w.cards, false);
      } catch (e) { /* no welcome */ }
    }
    welcomed = role !== "agent";  // shown now or earlier: the bot need not repeat it in its first answer
    history.forEach(showStored);
    poll();
  })();
})();
