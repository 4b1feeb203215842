/* The campaign form (admin/campaign_views.py): under the audience picker, how many customers the
   chosen group, tag, level or segment holds now and how many each send path reaches (asked of
   /admin/campaign/audience/); the repeat's weekday, day and time shown only for that repeat. */
(function () {
  "use strict";
  var script = document.currentScript;
  var url = script && script.getAttribute("data-count-url");
  var audience = document.getElementById("audience");
  if (audience && url) {
    var note = document.createElement("small");
    note.id = "audience-count";
    note.className = "form-text text-info";
    audience.parentNode.insertBefore(note, audience.nextSibling);
    var update = function () {
      fetch(url + "?audience=" + encodeURIComponent(audience.value), {credentials: "same-origin"})
        .then(function (r) { return r.json(); })
        .then(function (body) { note.textContent = body.error || body.text; })
        .catch(function () { note.textContent = ""; });
    };
    audience.addEventListener("change", update);
    update();
  }
  var repeat = document.getElementById("repeat");
  if (repeat) {
    var rows = {repeat_weekday: ["weekly"], repeat_day: ["monthly"], repeat_at: ["daily", "weekly", "monthly"]};
    var show = function () {
      Object.keys(rows).forEach(function (id) {
        var field = document.getElementById(id);
        var group = field && field.closest(".form-group");
        if (group) { group.style.display = rows[id].indexOf(repeat.value) >= 0 ? "" : "none"; }
      });
    };
    repeat.addEventListener("change", show);
    show();
  }
})();
