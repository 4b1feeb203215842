/* The dashboard's two charts: the last 30 days (messages in, bot answers, handoffs) and the
   agents' workload. A static file, for the panel's Content-Security-Policy (no inline script):
   the daily chart's canvas carries the JSON address and the translated series names. */
(function () {
  "use strict";
  var daily = document.getElementById("chart-daily");
  var agents = document.getElementById("chart-agents");
  if (!daily || !agents || typeof Chart === "undefined") { return; }
  var names = JSON.parse(daily.getAttribute("data-names"));
  var scales = {y: {beginAtZero: true, ticks: {precision: 0}}};
  fetch(daily.getAttribute("data-url"), {credentials: "same-origin"})
    .then(function (r) { return r.json(); })
    .then(function (data) {
      var s = data.series;
      new Chart(daily, {
        type: "line",
        data: {labels: s.labels, datasets: [
          {label: names.messages_in, data: s.messages_in, borderColor: "#0d6efd", backgroundColor: "rgba(13,110,253,.1)", fill: true, tension: .3},
          {label: names.bot_answered, data: s.bot_answered, borderColor: "#198754", tension: .3},
          {label: names.handoffs, data: s.handoffs, borderColor: "#fd7e14", tension: .3}]},
        options: {maintainAspectRatio: false, animation: false, scales: scales}
      });
      new Chart(agents, {
        type: "bar",
        data: {labels: data.agents.map(function (a) { return a.agent; }), datasets: [
          {label: names.assigned, data: data.agents.map(function (a) { return a.assigned; }), backgroundColor: "#0d6efd"},
          {label: names.resolved, data: data.agents.map(function (a) { return a.resolved; }), backgroundColor: "#198754"}]},
        options: {maintainAspectRatio: false, animation: false, scales: scales}
      });
      document.body.setAttribute("data-charts", "ready");
    });
})();

/* 待回复 and the longest wait stay current while the dashboard is open: refreshed every 30 s
   from the same JSON, and the cards turn red when someone waits past the response limit. */
(function () {
  "use strict";
  var card = document.getElementById("waiting-card");
  if (!card || typeof fetch === "undefined") { return; }
  var longest = document.querySelector("[data-kpi='longest_wait']");
  var units = JSON.parse(longest.getAttribute("data-units"));
  function duration(v) {
    if (v === null || v === undefined) { return "—"; }
    return v < 60 ? Math.round(v) + " " + units.s : (v / 60).toFixed(1) + " " + units.m;
  }
  function refresh() {
    fetch(card.getAttribute("data-url"), {credentials: "same-origin"})
      .then(function (r) { return r.json(); })
      .then(function (data) {
        var w = data.waiting;
        document.querySelector("[data-kpi='waiting']").textContent = String(w.count);
        document.querySelector("[data-kpi='waiting_over']").textContent = String(w.over_limit);
        longest.textContent = duration(w.longest_seconds);
        [card, document.getElementById("longest-card")].forEach(function (el) {
          el.classList.toggle("border-danger", w.over_limit > 0);
        });
      })
      .catch(function () { /* keep the last figures; the next tick tries again */ });
  }
  window.setInterval(refresh, 30000);
})();
