/* The dashboard's learning-loop chart: per day, the questions the bot left unanswered, the
   groups and questions an operator handled that day, and the share the bot answered itself
   (自助解决率).
   A static file (no inline script, for the panel's Content-Security-Policy): the canvas
   carries the JSON address and the translated series names as data-* attributes. */
(function () {
  "use strict";
  var canvas = document.getElementById("chart-learning");
  if (!canvas || typeof Chart === "undefined") { return; }
  var names = JSON.parse(canvas.getAttribute("data-names"));
  fetch(canvas.getAttribute("data-url"), {credentials: "same-origin"})
    .then(function (r) { return r.json(); })
    .then(function (data) {
      var s = data.learning;
      new Chart(canvas, {
        data: {labels: s.labels, datasets: [
          {type: "bar", label: names.unanswered, data: s.unanswered, backgroundColor: "rgba(253,126,20,.6)", yAxisID: "y"},
          {type: "bar", label: names.resolved, data: s.resolved, backgroundColor: "rgba(25,135,84,.6)", yAxisID: "y"},
          {type: "line", label: names.groups, data: s.groups_resolved, borderColor: "#198754", yAxisID: "y",
           stepped: true, pointRadius: 2},
          {type: "line", label: names.rate, yAxisID: "rate", borderColor: "#0d6efd", tension: .3, spanGaps: true,
           data: s.self_service_rate.map(function (v) { return v === null ? null : Math.round(v * 1000) / 10; })}]},
        options: {maintainAspectRatio: false, animation: false, scales: {
          y: {beginAtZero: true, ticks: {precision: 0}, position: "left"},
          rate: {min: 0, max: 100, position: "right", grid: {drawOnChartArea: false},
                 ticks: {callback: function (v) { return v + "%"; }}}}}
      });
      canvas.setAttribute("data-chart", "ready");
    });
})();
