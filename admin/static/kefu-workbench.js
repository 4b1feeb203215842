/* The agents' workbench (admin/workbench.py): live through the webhook server's event stream
   (adapters/workbench_stream.py, opened with a one-minute token from POST live), and polling
   the inbox and the open thread every two seconds whenever the stream is not open (before it
   opens, after it drops, in a browser without EventSource). Every text from customers, agents
   or the server is set with textContent, never as HTML. Every POST carries the CSRF token. */
(function () {
  "use strict";
  var root = document.getElementById("workbench");
  if (!root) return;
  var base = root.getAttribute("data-base").replace(/\/$/, "");
  var csrf = root.getAttribute("data-csrf");
  var current = null;
  var lastId = 0;
  var faqId = "";

  function el(tag, cls, text) {
    var n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text !== undefined && text !== null) n.textContent = String(text);
    return n;
  }
  function clientId() { return (Date.now().toString(36) + Math.random().toString(36).slice(2) + "xxxxxxxx").slice(0, 24); }
  function error(text) { document.getElementById("wb-error").textContent = text || ""; }

  async function post(path, fields) {
    var body = new URLSearchParams(fields || {});
    body.set("csrf_token", csrf);
    var r = await fetch(base + path, { method: "POST", body: body, credentials: "same-origin", headers: { "X-CSRFToken": csrf } });
    if (!r.ok) { error("操作未完成（" + r.status + "）"); return null; }
    error("");
    return r.json();
  }

  function item(row, list) {
    var li = el("li", "list-group-item list-group-item-action" + (row.id === current ? " active" : ""));
    li.setAttribute("data-id", row.id);
    li.appendChild(el("div", "font-weight-bold", "#" + row.id + " " + row.customer));
    if (row.unread) li.appendChild(el("span", "badge badge-danger wb-unread", row.unread));
    li.appendChild(el("div", "small text-truncate", row.last));
    li.addEventListener("click", function () { open(row.id); });
    list.appendChild(li);
  }

  async function refreshInbox() {
    var r = await fetch(base + "/inbox.json", { credentials: "same-origin" });
    if (!r.ok) return;
    showInbox(await r.json());
  }

  var inboxState = null;
  function showRow(row) {  // the stream's one changed line of my inbox: replace it, keep the order
    if (!inboxState) return;
    var mine = inboxState.mine.filter(function (r) { return r.id !== row.id; });
    mine.push(row);
    mine.sort(function (a, b) { var x = a.waiting_since || "9999", y = b.waiting_since || "9999"; return x < y ? -1 : x > y ? 1 : a.id - b.id; });
    inboxState.mine = mine;
    showInbox(inboxState);
  }

  function showInbox(d) {
    inboxState = d;
    var mine = document.getElementById("wb-mine"), queue = document.getElementById("wb-queue");
    mine.textContent = ""; queue.textContent = "";
    d.mine.forEach(function (row) { item(row, mine); });
    d.queue.forEach(function (row) { item(row, queue); });
    document.getElementById("wb-pool").textContent = d.pool;
    if (d.me) {
      document.getElementById("wb-me").textContent = d.me.name + " " + d.me.open + "/" + d.me.max_open;
      var s = document.getElementById("wb-status");
      if (document.activeElement !== s) s.value = d.me.status;
    }
  }

  function showMessage(m) {
    var who = { customer: "顾客", bot: "机器人", agent: "客服" + (m.agent ? "「" + m.agent + "」" : ""), system: "系统" }[m.author] || m.author;
    var row = el("div", "wb-msg mb-1 " + (m.author === "customer" ? "" : "text-right"));
    row.setAttribute("data-id", m.id);
    row.appendChild(el("div", "small text-muted", who));
    row.appendChild(el("div", "wb-text d-inline-block border rounded px-2", m.text));
    (m.cards || []).forEach(function (c, i) { row.appendChild(el("div", "small", (i + 1) + ". " + c)); });
    document.getElementById("wb-thread").appendChild(row);
  }

  function showCustomer(c) {
    var box = document.getElementById("wb-customer");
    box.textContent = "";
    box.appendChild(el("h6", "", c.name));
    box.appendChild(el("div", "small", c.level + (c.tags.length ? " · " + c.tags.join(" / ") : "")));
    if (c.notes) box.appendChild(el("div", "small text-muted", c.notes));
    box.appendChild(el("div", "font-weight-bold small mt-2", "订单"));
    c.orders.forEach(function (o) { box.appendChild(el("div", "small", o.id + " " + o.status + " ¥" + o.amount)); });
    box.appendChild(el("div", "font-weight-bold small mt-2", "优惠券"));
    c.coupons.forEach(function (o) { box.appendChild(el("div", "small", o.name + " " + o.expires_at.slice(0, 10))); });
    box.appendChild(el("div", "font-weight-bold small mt-2", "历史会话"));
    c.earlier.forEach(function (o) { box.appendChild(el("div", "small", "#" + o.id + " " + o.opened_at.slice(0, 10) + " " + o.status + (o.rating ? " ★" + o.rating : ""))); });
  }

  function showSuggestions(list) {
    var box = document.getElementById("wb-suggestions");
    box.textContent = "";
    list.forEach(function (s) {
      var b = el("button", "btn btn-outline-info btn-sm mr-1 mb-1 wb-suggestion", s.question);
      b.type = "button";
      b.title = s.answer;
      b.addEventListener("click", function () { document.getElementById("wb-text").value = s.answer; faqId = String(s.faq_id); });
      box.appendChild(b);
      var send = el("button", "btn btn-info btn-sm mr-2 mb-1 wb-suggestion-send", "发送");
      send.type = "button";
      send.title = s.answer;
      send.addEventListener("click", async function () {  // one click: the answer goes as it is
        if (current !== null && await post("/conversation/reply", { id: current, text: s.answer, client_id: clientId(), faq_id: s.faq_id })) refreshThread(false);
      });
      box.appendChild(send);
    });
  }

  function showWindow(w) {
    var box = document.getElementById("wb-window");
    box.textContent = "";
    if (!w) return;
    if (!w.open) { box.appendChild(el("div", "small text-danger", "发送窗口已关闭：顾客再发消息前无法回复")); return; }
    var left = Math.max(0, Date.parse(w.open_until) - Date.now()), h = Math.floor(left / 3600000), m = Math.floor(left % 3600000 / 60000);
    var text = "发送窗口还剩 " + h + " 小时 " + m + " 分";
    if (w.sends_left !== null) text += "，还可发 " + w.sends_left + " 条";
    box.appendChild(el("div", "small" + (w.sends_left === 0 ? " text-danger" : ""), text));
  }

  function showLearnable(list) {
    var box = document.getElementById("wb-learn");
    box.textContent = "";
    list.forEach(function (q) {
      var row = el("div", "small mb-1 wb-learn-row", "机器人未答：" + q.text + " ");
      if (q.faq_id) {
        var b = el("button", "btn btn-outline-success btn-sm ml-1 wb-learn-phrasing", "加为该 FAQ 的问法");
        b.type = "button"; b.title = q.faq;
        b.addEventListener("click", function () { learn(q.id, q.faq_id); });
        row.appendChild(b);
      }
      var n = el("button", "btn btn-outline-success btn-sm ml-1 wb-learn-new", "以我的回复新建 FAQ");
      n.type = "button";
      n.addEventListener("click", function () { learn(q.id, ""); });
      row.appendChild(n);
      box.appendChild(row);
    });
  }

  async function learn(questionId, faq) {
    var r = await fetch(base + "/conversation/learn", { method: "POST", credentials: "same-origin", headers: { "X-CSRFToken": csrf },
      body: new URLSearchParams({ id: current, question_id: questionId, faq_id: faq, csrf_token: csrf }) });
    var d = await r.json().catch(function () { return {}; });
    if (!r.ok) { error(d.error || ("操作未完成（" + r.status + "）")); return; }
    error(""); refreshThread(false);
  }

  async function refreshPhrases() {
    var q = document.getElementById("wb-phrase-q");
    var r = await fetch(base + "/phrases.json?q=" + encodeURIComponent(q.value), { credentials: "same-origin" });
    if (!r.ok) return;
    var box = document.getElementById("wb-phrases");
    box.textContent = "";
    (await r.json()).phrases.forEach(function (p) {
      var b = el("button", "btn btn-light btn-sm mr-1 mb-1 wb-phrase", p.text.length > 24 ? p.text.slice(0, 24) + "…" : p.text);
      b.type = "button"; b.title = p.text;
      b.addEventListener("click", function () { document.getElementById("wb-text").value = p.text; faqId = ""; });
      box.appendChild(b);
    });
  }

  async function refreshThread(reset) {
    if (current === null) return;
    if (reset) { lastId = 0; document.getElementById("wb-thread").textContent = ""; }
    var r = await fetch(base + "/conversation.json?id=" + current + "&after=" + lastId, { credentials: "same-origin" });
    if (!r.ok) { error("无法打开该会话"); current = null; return; }
    var d = await r.json();
    d.messages.forEach(function (m) { if (m.id > lastId) { showMessage(m); lastId = m.id; } });
    var t = document.getElementById("wb-thread"); t.scrollTop = t.scrollHeight;
    document.getElementById("wb-brief").textContent = d.brief || "";
    showCustomer(d.customer);
    showSuggestions(d.suggestions);
    showWindow(d.window);
    showLearnable(d.learnable || []);
    var sel = document.getElementById("wb-transfer-to");
    var keep = sel.value;
    sel.textContent = "";
    d.agents.forEach(function (a) { var o = el("option", "", a.name + "（" + a.status + "）"); o.value = a.id; sel.appendChild(o); });
    if (keep) sel.value = keep;
    document.getElementById("wb-claim").hidden = d.status !== "queued";
  }

  function open(id) {
    current = id;
    root.querySelectorAll("#wb-mine li, #wb-queue li").forEach(function (li) {  // at once, not at the next inbox
      li.classList.toggle("active", Number(li.getAttribute("data-id")) === id);
    });
    refreshThread(true); refreshInbox();
  }

  document.getElementById("wb-reply").addEventListener("submit", async function (ev) {
    ev.preventDefault();
    var box = document.getElementById("wb-text");
    var text = box.value.trim();
    if (!text || current === null) return;
    var done = await post("/conversation/reply", { id: current, text: text, client_id: clientId(), faq_id: faqId });
    if (done) { box.value = ""; faqId = ""; refreshThread(false); }
  });
  document.getElementById("wb-resolve").addEventListener("click", async function () {
    if (current !== null && await post("/conversation/resolve", { id: current })) { refreshThread(false); refreshInbox(); }
  });
  document.getElementById("wb-claim").addEventListener("click", async function () {
    if (current !== null && await post("/conversation/claim", { id: current })) { refreshThread(false); refreshInbox(); }
  });
  document.getElementById("wb-transfer").addEventListener("click", async function () {
    if (current === null) return;
    var done = await post("/conversation/transfer", { id: current, agent_id: document.getElementById("wb-transfer-to").value,
                                                                      note: document.getElementById("wb-transfer-note").value });
    if (done) { current = null; document.getElementById("wb-thread").textContent = ""; refreshInbox(); }
  });
  document.getElementById("wb-phrase-q").addEventListener("input", refreshPhrases);
  document.getElementById("wb-phrase-save").addEventListener("click", async function () {
    var text = document.getElementById("wb-text").value.trim();
    if (text && await post("/phrases/add", { text: text })) refreshPhrases();
  });
  refreshPhrases();
  var status = document.getElementById("wb-status");
  if (status) status.addEventListener("change", function () { post("/status", { status: status.value, client_id: clientId() }).then(refreshInbox); });

  // -- live: the event stream; polling only while it is not open --------------------------------
  var live = null, liveRetry = 1000, liveTimer = null, polling = null;
  function setLive(on) {
    var badge = document.getElementById("wb-live");
    root.setAttribute("data-live", on ? "stream" : "poll");
    if (badge) { badge.textContent = badge.getAttribute(on ? "data-stream" : "data-poll"); badge.className = "badge ml-2 " + (on ? "badge-success" : "badge-secondary"); }
    if (on && polling !== null) { clearTimeout(polling); polling = null; }
    if (!on && polling === null) tick();
  }
  function tick() {
    polling = -1;
    Promise.all([refreshInbox(), refreshThread(false)]).catch(function () {})
      .then(function () { if (polling !== null) polling = setTimeout(tick, 2000); });
  }
  function onMessage(ev) {
    var d = JSON.parse(ev.data);
    if (d.conversation === current && d.message.id > lastId) {
      showMessage(d.message); lastId = d.message.id;
      var t = document.getElementById("wb-thread"); t.scrollTop = t.scrollHeight;
      if (d.message.author === "customer") refreshThread(false);  // new suggestions for the new question
    }
  }
  function dropLive() {
    if (live) { live.close(); live = null; }
    setLive(false);
    if (liveTimer !== null) return;  // one retry at a time ("end" and the error that follows it)
    liveTimer = setTimeout(function () { liveTimer = null; openLive(); }, liveRetry);
    liveRetry = Math.min(liveRetry * 2, 30000);
  }
  async function openLive() {
    if (!window.EventSource || root.getAttribute("data-live-off") !== null) return;
    var ticket = await post("/live", {}).catch(function () { return null; });
    if (!ticket) { dropLive(); return; }
    live = new EventSource(ticket.url + "?token=" + encodeURIComponent(ticket.token));
    live.addEventListener("hello", function () {
      liveRetry = 1000; setLive(true);
      refreshInbox(); refreshThread(false);  // what changed before the stream opened
    });
    live.addEventListener("message", onMessage);
    live.addEventListener("inbox", function (ev) { showInbox(JSON.parse(ev.data)); });
    live.addEventListener("row", function (ev) { showRow(JSON.parse(ev.data).row); });
    live.addEventListener("end", function () { liveRetry = 100; dropLive(); });  // renewed with a fresh token
    live.onerror = dropLive;  // a dropped or refused stream: poll, and try again later
  }
  setLive(false);
  openLive();
})();
